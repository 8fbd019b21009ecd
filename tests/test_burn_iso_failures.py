"""burn-iso when things go wrong: a killed process, a full disk, a missing object; and a file over 4 GiB."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import blake3
import pytest

from avlog.context import init_store
from avlog.iso.archive import Expected, compare
from avlog.iso.build import DiscFile, Image, Volume
from avlog.iso.verify import read_medium
from conftest import Cli, catalog_rows, register, require_tool, run_avlog


def _discs(store: Path) -> list[tuple[str, str]]:
    return [(r["volume_id"], r["state"]) for r in catalog_rows(store, "SELECT volume_id, state FROM discs")]


def _flagged_store(store: Path, card: Path, sizes: list[int]) -> list[int]:
    """A store holding incompressible clips of ``sizes`` bytes, all flagged."""
    card.mkdir(parents=True, exist_ok=True)
    for n, size in enumerate(sizes):
        with open(card / f"REC{n:04d}.MP4", "wb") as f:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 8 << 20))
                f.write(chunk)
                remaining -= len(chunk)
    cli = Cli(store)
    register(cli)
    result = cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    ids = [c["clip_id"] for c in json.loads(result.stdout)["clips"]]
    assert cli("flag", *map(str, ids), "--reason", "obstruction", "--note", "refused").exit_code == 0
    return ids


def _io(pid: int) -> dict[str, int]:
    """The process's I/O counters: ``rchar``/``wchar`` count every byte read or written through syscalls."""
    text = Path(f"/proc/{pid}/io").read_text()
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["image created", "half written", "half read back"])
def test_a_kill_mid_build_leaves_no_disc_row_and_no_final_image(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    sizes = [120 << 20, 120 << 20, 80 << 20]
    _flagged_store(store, tmp_path / "card", sizes)
    payload = sum(sizes)
    discs = store / "discs"
    process = subprocess.Popen(
        [sys.executable, "-m", "avlog", "--store", str(store), "burn-iso", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"burn-iso ended before the moment ({moment}) came"
            assert time.monotonic() < deadline
            if list(discs.glob(".AVLOG_*.iso.part")):
                io = _io(process.pid)
                # Writing reads the objects and writes the image; the read-back reads the image once more.
                if (
                    moment == "image created"
                    or (moment == "half written" and io["wchar"] >= payload // 2)
                    or (moment == "half read back" and io["rchar"] >= payload + payload // 2)
                ):
                    break
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert _discs(store) == []
    assert not list(discs.glob("AVLOG_*.iso"))  # no final name
    # The next run clears the leftover and makes the disc.
    again = run_avlog(store, "burn-iso", "--json")
    assert again.returncode == 0, again.stderr
    (disc,) = json.loads(again.stdout)["discs"]
    assert disc["verified"] and [p.name for p in discs.iterdir() if p.name != ".burn.lock"] == [
        f"{disc['volume_id']}.iso"
    ]
    assert _discs(store) == [(disc["volume_id"], "image")]


@pytest.mark.root
def test_a_full_output_disk_is_one_line_and_leaves_nothing(
    store: Path, tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [20 << 20, 10 << 20])  # 30 MB for a 24 MB filesystem
    result = run_avlog(store, "burn-iso", "--out", str(small_fs / "images"))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("avlog: no room for the image"), result.stderr
    assert _discs(store) == []
    assert list((small_fs / "images").iterdir()) == []


def test_a_missing_object_stops_the_disc(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [100_000, 200_000])
    victim = next(p for p in (store / "objects").rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.unlink()
    result = run_avlog(store, "burn-iso")
    assert result.returncode == 3 and "stored copy is missing" in result.stderr and "Traceback" not in result.stderr
    assert _discs(store) == [] and not [p for p in (store / "discs").iterdir() if p.suffix in (".iso", ".part")]


def test_a_damaged_object_fails_the_read_back_and_is_not_kept(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [300_000])
    (obj,) = [p for p in (store / "objects").rglob("*") if p.is_file()]
    obj.chmod(0o644)
    with open(obj, "r+b") as f:
        f.seek(1234)
        byte = f.read(1)
        f.seek(1234)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = run_avlog(store, "burn-iso")
    assert result.returncode == 3
    assert "failed its read-back" in result.stderr and "differs from the catalog" in result.stderr
    assert _discs(store) == [] and not [p for p in (store / "discs").iterdir() if p.suffix in (".iso", ".part")]


@pytest.mark.slow
def test_a_file_over_4_gib_round_trips_through_every_view(tmp_path: Path) -> None:
    """Multi-extent ISO 9660 (level 3) and several UDF allocation descriptors; read back by avlog through
    the UDF and ISO 9660 trees (which must agree on every extent), and extracted by xorriso."""
    size = (9 << 29) + 12345  # 4.5 GiB and a bit: two ISO 9660 extents, five UDF descriptors
    big = tmp_path / "big.MP4"
    with open(big, "wb") as f:
        f.truncate(size)
        for at in (0, (1 << 31) + 7, 0xFFFFF800 - 3, (1 << 32) - 1, 1 << 32, size - 1):
            f.seek(at)
            f.write(hashlib.sha256(str(at).encode()).digest()[:1])
    with open(big, "rb") as f:
        expected_b3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
        while chunk := f.read(64 << 20):
            expected_b3.update(chunk)
    b3 = expected_b3.hexdigest()
    when = datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC)
    files = [
        DiscFile("data/BC-0001/2026-11-20/big.MP4", size, when, source=big),
        DiscFile("data/README.txt", 5, when, content=b"hello"),
    ]
    image_path = tmp_path / "big.iso"
    image = Image(Volume("AVLOG_2026_0099", "AVLOG_TEST", "org", "t", "AVLOG", when), files)
    fd = os.open(image_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
    try:
        image.write(fd, image_path)
    finally:
        os.close(fd)
    reading = read_medium(image_path)
    assert reading.problems == []
    assert reading.files["data/BC-0001/2026-11-20/big.MP4"] == (size, b3)
    bad = compare(
        reading,
        [
            Expected("data/BC-0001/2026-11-20/big.MP4", size, b3, 1),
            Expected("data/README.txt", 5, blake3.blake3(b"hello").hexdigest(), None),
        ],
    )
    assert bad == []
    out = tmp_path / "x"
    subprocess.run(
        [require_tool("xorriso"), "-osirrox", "on", "-indev", str(image_path), "-extract", "/", str(out)],
        check=True,
        capture_output=True,
    )
    extracted = out / "data" / "BC-0001" / "2026-11-20" / "big.MP4"
    assert subprocess.run(["cmp", str(big), str(extracted)], capture_output=True).returncode == 0


def test_a_store_without_discs_folder_or_a_bad_out_is_one_line(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [50_000])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_avlog(store, "burn-iso", "--out", str(blocker / "sub"))
    assert result.returncode == 1 and result.stderr.startswith("avlog: cannot create")
    assert "Traceback" not in result.stderr
    assert _discs(store) == []


def test_init_store_creates_the_discs_folder(tmp_path: Path) -> None:
    init_store(tmp_path / "s", actor="t")
    assert (tmp_path / "s" / "discs").is_dir()


@pytest.mark.slow
def test_a_run_that_fails_at_its_second_disc_keeps_the_first_and_exits_4(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two recordings too big to share a CD-R: the second disc's read-back fails (its stored copy was damaged
    after ingest); the first disc stands, the run says so and exits 4, and the next run retries the second."""
    monkeypatch.setenv("AVLOG_USER", "tester")
    card = tmp_path / "card"
    card.mkdir()
    for name, size, mark in (("BIG1.MP4", 420_000_000, b"\x01"), ("BIG2.MP4", 410_000_000, b"\x02")):
        with open(card / name, "wb") as f:  # sparse on the card, real in the store
            f.write(mark)
            f.truncate(size)
    cli = Cli(store)
    register(cli)
    assert cli("ingest", "--from", str(card), "--device-serial", "BC-0001").exit_code == 0
    assert cli("flag", "1", "2", "--reason", "incident", "--note", "n").exit_code == 0
    with sqlite3.connect(store / "catalog.sqlite") as conn:
        (b3,) = conn.execute("SELECT blake3 FROM clips WHERE original_path = 'BIG2.MP4'").fetchone()
    damaged = store / "objects" / b3[:2] / b3
    damaged.chmod(0o644)
    with open(damaged, "r+b") as f:
        f.seek(300_000_000)
        f.write(b"\xff")
    settings = store / "avlog.toml"
    settings.write_text(settings.read_text().replace("disc_copies = 2", "disc_copies = 1"))
    result = run_avlog(store, "burn-iso", "--media", "cd", "--json")
    assert result.returncode == 4, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["discs"]) == 1 and doc["discs"][0]["clips"] == [1] and "failed its read-back" in doc["failure"]
    assert doc["still_needing_copies"] == [2]  # clip 1 has its one copy; clip 2's disc was not made
    assert result.stderr.strip().splitlines()[-1].startswith("avlog: stopped after 1 disc(s)")
    assert [v for v, _s in _discs(store)] == [doc["discs"][0]["volume_id"]]


def test_leftovers_of_a_run_killed_between_link_and_commit_are_cleared(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state such a kill leaves, made by hand: a locked-by-nobody ``.part`` of this store and its final
    name linked to it, no disc row. The next run removes both and makes the disc under that number."""
    from avlog.context import open_context
    from avlog.iso import registry

    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [100_000])
    ctx = open_context(store, actor="tester")
    try:
        ident = registry.store_id(ctx)[:12]
    finally:
        ctx.close()
    year = datetime.now().year  # the store's zone and the host's agree on the year but on New Year's Eve
    part = store / "discs" / f".AVLOG_{year}_0001.{ident}.deadbeef.iso.part"
    part.write_bytes(b"half an image")
    final = store / "discs" / f"AVLOG_{year}_0001.iso"
    os.link(part, final)
    foreign = store / "discs" / ".AVLOG_2026_0001.0123456789AB.cafecafe.iso.part"  # another store's run
    foreign.write_bytes(b"not ours")
    result = run_avlog(store, "burn-iso", "--json")
    assert result.returncode == 0, result.stderr
    (disc,) = json.loads(result.stdout)["discs"]
    assert disc["volume_id"] == f"AVLOG_{year}_0001" and final.read_bytes() != b"half an image"
    assert not part.exists() and foreign.exists()


def test_a_shared_extent_hashes_right_for_every_name(tmp_path: Path) -> None:
    """Two names for one file (hard links in all trees, as other disc software makes for equal files):
    the single read pass gives each name every byte of the shared extent."""
    import io

    import pycdlib

    data = os.urandom(20 << 20)  # three 8 MiB chunks
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", udf="2.60")
    iso.add_fp(io.BytesIO(data), len(data), "/A.;1", rr_name="a", joliet_path="/a", udf_path="/a")
    iso.add_hard_link(iso_old_path="/A.;1", iso_new_path="/B.;1", rr_name="b")
    iso.add_hard_link(iso_old_path="/A.;1", joliet_new_path="/b")
    iso.add_hard_link(iso_old_path="/A.;1", udf_new_path="/b")
    iso.write(str(tmp_path / "links.iso"))
    iso.close()
    reading = read_medium(tmp_path / "links.iso")
    want = (len(data), blake3.blake3(data).hexdigest())
    assert reading.files == {"a": want, "b": want} and reading.problems == []


def test_the_leftover_of_a_recorded_disc_keeps_its_image_whatever_the_path_spelling(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its commit, before its .part went: the image is recorded and stays, even when the next
    run reaches the same folder through a symbolic link."""
    monkeypatch.setenv("AVLOG_USER", "tester")
    _flagged_store(store, tmp_path / "card", [100_000])
    link = tmp_path / "store-link"
    link.symlink_to(store)
    made = run_avlog(link, "burn-iso", "--json")
    assert made.returncode == 0, made.stderr
    (disc,) = json.loads(made.stdout)["discs"]
    final = store / "discs" / f"{disc['volume_id']}.iso"
    from avlog.context import open_context
    from avlog.iso import registry

    ctx = open_context(store, actor="tester")
    try:
        ident = registry.store_id(ctx)[:12]
    finally:
        ctx.close()
    os.link(final, store / "discs" / f".{disc['volume_id']}.{ident}.0badc0de.iso.part")
    again = run_avlog(store, "burn-iso", "--json")
    assert again.returncode == 0, again.stderr
    assert final.exists() and hashlib.sha256(final.read_bytes()).hexdigest() == disc["sha256"]
    assert not list((store / "discs").glob(".*.part"))
