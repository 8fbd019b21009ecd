"""``[store] reserve_mb``: room kept on the store's disk for the catalog, which ingest and burn-iso never take.

The ingest side runs on real small filesystems in test_diskfull.py; here are the setting, the
store's one check, and burn-iso on a real loop-mounted ext4 store.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from avlog.context import init_store, open_context
from avlog.errors import DiskFull, SettingsError
from avlog.settings import DEFAULT_TOML, RESERVE_MB_DEFAULT, Settings, parse_settings
from avlog.store.objects import DEFAULT_RESERVE_MB, ObjectStore
from conftest import Cli, catalog_rows, error_line, fill_fs, loop_ext4, register, set_store_reserve

MB = 1 << 20


# -- the setting ---------------------------------------------------------------------------------------------


def test_the_reserve_defaults_to_256_mb_everywhere() -> None:
    assert RESERVE_MB_DEFAULT == DEFAULT_RESERVE_MB == Settings().reserve_mb == 256
    assert ObjectStore(Path("/nonexistent")).reserve_mb == 256
    assert parse_settings(tomllib.loads(DEFAULT_TOML)).reserve_mb == 256
    assert "\nreserve_mb = 256\n" in DEFAULT_TOML.split("[ingest]")[0], "the default file documents it in [store]"


@pytest.mark.parametrize("value", [16, 1000, 1048576])
def test_a_reserve_in_range_is_taken(value: int) -> None:
    assert parse_settings({"store": {"reserve_mb": value}}).reserve_mb == value


@pytest.mark.parametrize("value", [15, 0, -1, 1048577, 16.5, "256", True])
def test_a_reserve_out_of_range_or_not_a_whole_number_is_refused(value: object) -> None:
    with pytest.raises(
        SettingsError, match=r"store\.reserve_mb = .* (must be a whole number|is out of range).* 16 to 1048576"
    ):
        parse_settings({"store": {"reserve_mb": value}}, "avlog.toml")


def test_the_store_opens_with_its_reserve(store: Path) -> None:
    set_store_reserve(store, 64)
    ctx = open_context(store, actor="tester")
    try:
        assert ctx.settings.reserve_mb == 64 and ctx.objects.reserve_mb == 64
    finally:
        ctx.close()


# -- the one check -----------------------------------------------------------------------------------------------


def test_ensure_room_refuses_below_the_reserve_and_before_crossing_it(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free >> 20
    assert free_mb > 2048, "these margins need 2 GB free"

    above = ObjectStore(tmp_path, reserve_mb=free_mb + 1024)
    with pytest.raises(DiskFull) as refused:
        above.ensure_room()
    message = str(refused.value)
    assert message.startswith("the store's disk is almost full: ") and "\n" not in message
    assert f"less than the reserve of {free_mb + 1024} MB kept for the catalog ([store] reserve_mb)" in message
    assert str(tmp_path) in message

    below = ObjectStore(tmp_path, reserve_mb=free_mb - 1024)
    below.ensure_room()
    below.ensure_room(512 * MB)
    with pytest.raises(DiskFull, match=r"and 1537 MB more would leave less than the reserve"):
        below.ensure_room(1536 * MB + 1)  # a part of a MB counts as a whole one


# -- burn-iso ------------------------------------------------------------------------------------------------------


def _flagged_clips(cli: Cli, card: Path, sizes: list[int]) -> None:
    card.mkdir()
    for n, size in enumerate(sizes):
        (card / f"REC{n:04d}.MP4").write_bytes(os.urandom(size))
    register(cli)
    ingest = cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json")
    assert ingest.exit_code == 0, ingest.stderr
    ids = [str(c["clip_id"]) for c in json.loads(ingest.stdout)["clips"]]
    assert cli("flag", *ids, "--reason", "obstruction", "--note", "refused").exit_code == 0


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.root
def test_burn_iso_starts_no_image_that_would_take_the_reserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    elsewhere = tmp_path / "images"  # on the machine's own disk, not the store's
    with loop_ext4(tmp_path / "fs.img", tmp_path / "mnt", 48) as fs:
        store = fs / "store"
        init_store(store, actor="tester")
        set_store_reserve(store, 16)
        cli = Cli(store)
        _flagged_clips(cli, tmp_path / "card", [2 * MB, 2 * MB])  # one image of a little over 4 MB

        # Below the reserve: no image is begun, wherever it would be written.
        filler = fill_fs(fs, leave=12 * MB)
        below = cli("burn-iso", "--out", str(elsewhere))
        assert below.exit_code == 1, below.stderr
        line = error_line(below.stderr)
        assert "the store's disk is almost full" in line and "less than the reserve of 16 MB" in line, line
        assert _files(elsewhere) == []

        # Above it, but an image written in the store's own discs/ folder would cross it.
        filler.unlink()
        filler = fill_fs(fs, leave=19 * MB)
        crossing = cli("burn-iso")
        assert crossing.exit_code == 1, crossing.stderr
        line = error_line(crossing.stderr)
        assert "MB more would leave less than the reserve of 16 MB" in line and "[store] reserve_mb" in line, line
        assert _files(store / "discs") == []
        assert catalog_rows(store, "SELECT COUNT(*) AS n FROM discs")[0]["n"] == 0
        assert shutil.disk_usage(store).free > 16 * MB

        # Written on another disk, the same image leaves the store's reserve alone.
        made = cli("burn-iso", "--out", str(elsewhere), "--json")
        assert made.exit_code == 0, made.stderr
        (disc,) = json.loads(made.stdout)["discs"]
        assert disc["verified"] and _files(elsewhere) == [Path(disc["path"]).name]
        assert catalog_rows(store, "SELECT COUNT(*) AS n FROM discs")[0]["n"] == 1
        filler.unlink()
