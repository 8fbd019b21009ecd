"""Failures on the card's side and around the store: each named in one line, no traceback, the store sound.

A damaged FAT32 card, a file cut short while it is copied, a file the user may
not read, a store the user may not write, settings below the Art. 19 floor and
a catalog that is not a database. Runs that need an unprivileged user switch
to ``nobody`` (uid 65534) for real, in a private mount namespace where the
interpreter's folders are made reachable without changing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dissect.fat import FATFS

import avlog
from avlog.context import init_store
from avlog.samples import write_video
from conftest import error_line, file_digests, make_fat32_image, require_tool, run_avlog

SERIAL = "BC-SRC-1"
NOBODY = 65534


# -- common checks --------------------------------------------------------------------------------------


def small_card(root: Path, count: int = 3, *, noise: bool = False) -> dict[str, tuple[str, str]]:
    """``count`` distinct short real clips under DCIM/100MEDIA, with their (BLAKE3, SHA-256)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    out = {}
    for n in range(count):
        moment = start + timedelta(seconds=2 * n)
        rel = f"DCIM/100MEDIA/{moment.strftime('%Y%m%d_%H%M%S')}_{n + 1:04d}.MP4"
        write_video(root / rel, start=moment, seconds=1 + n * 0.5, noise=noise)
        out[rel] = file_digests(root / rel)
    assert len({b for b, _s in out.values()}) == count
    return out


def object_names(store: Path) -> set[str]:
    return {p.name for p in (store / "objects").rglob("*") if p.is_file()}


def assert_objects_sound(store: Path) -> None:
    for p in (store / "objects").rglob("*"):
        if p.is_file():
            assert file_digests(p)[0] == p.name, f"object {p} is not what its name says"
    assert list((store / "tmp").glob("*.part")) == [], "partial copies left in tmp/"


def clip_rows(store: Path) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(store / "catalog.sqlite")
    try:
        return {p: (b, s) for p, b, s in conn.execute("SELECT original_path, blake3, sha256 FROM clips")}
    finally:
        conn.close()


def register(store: Path) -> None:
    reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "赵六", "--unit", "四中队")
    assert reg.returncode == 0, reg.stderr


def check_partial(result: subprocess.CompletedProcess[str], card: dict[str, tuple[str, str]], bad: str) -> dict:
    """Exit 4, the bad file failed and named, every other file stored with the hashes computed here."""
    assert result.returncode == 4, result.stderr
    line = error_line(result.stderr)
    assert bad in line, line
    doc = json.loads(result.stdout)
    by_path = {c["original_path"]: c for c in doc["clips"]}
    assert set(by_path) == set(card)
    assert by_path[bad]["status"] == "failed" and by_path[bad]["error"], by_path[bad]
    for rel, (b3, sha) in card.items():
        if rel != bad:
            assert by_path[rel]["status"] == "stored", by_path[rel]
            assert (by_path[rel]["blake3"], by_path[rel]["sha256"]) == (b3, sha)
    assert doc["stored"] == len(card) - 1 and doc["failed"] == 1
    return by_path[bad]


# -- a damaged FAT32 card ---------------------------------------------------------------------------


def cut_cluster_chain(image: Path, card_path: str) -> int:
    """Mark the file's first cluster as the end of its chain in every FAT; returns the cluster."""
    with open(image, "rb") as fh:
        fs = FATFS(fh)
        entry = fs.get(card_path)
        first, size = entry.cluster, entry.size
        fh.seek(0)
        boot = fh.read(512)
    bytes_per_sector, sectors_per_cluster, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
    fat_sectors = struct.unpack_from("<I", boot, 36)[0]
    assert size > bytes_per_sector * sectors_per_cluster, "the file must span more than one cluster"
    with open(image, "r+b") as fh:
        for n in range(fats):
            offset = (reserved + n * fat_sectors) * bytes_per_sector + 4 * first
            fh.seek(offset)
            (old,) = struct.unpack("<I", fh.read(4))
            assert 2 <= (old & 0x0FFFFFFF) < 0x0FFFFFF8, "the first cluster must continue the chain"
            fh.seek(offset)
            fh.write(struct.pack("<I", (old & 0xF0000000) | 0x0FFFFFFF))
    return first


def test_fat32_card_with_cut_cluster_chain_fails_that_clip_only(tmp_path: Path, store: Path) -> None:
    card = small_card(tmp_path / "card", noise=True)
    image = make_fat32_image(tmp_path / "card", tmp_path / "card.img")
    bad = sorted(card)[1]
    cut_cluster_chain(image, bad)
    with open(image, "rb") as fh:  # the card still lists the whole size, but cannot deliver it
        entry = FATFS(fh).get(bad)
        assert entry.size == (tmp_path / "card" / bad).stat().st_size
        assert len(entry.open().read()) < entry.size
    register(store)

    result = run_avlog(store, "ingest", "--from", str(image), "--device-serial", SERIAL, "--json")
    check_partial(result, card, bad)
    assert object_names(store) == {b for rel, (b, _s) in card.items() if rel != bad}
    assert clip_rows(store) == {rel: h for rel, h in card.items() if rel != bad}
    assert_objects_sound(store)
    verify = run_avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = run_avlog(store, "audit", "verify")
    assert chain.returncode == 0, chain.stderr


# -- a file cut short while it is copied ------------------------------------------------------------


def _truncate_during_copy(tmp_path: Path, seconds: float) -> tuple[subprocess.CompletedProcess[str], dict, str, int]:
    """One attempt: returns the run, the card's hashes, the big clip's path and its size before the cut."""
    root = tmp_path / "card"
    card = small_card(root)
    start = datetime.now(UTC) - timedelta(hours=2)
    big = f"DCIM/100MEDIA/{start.strftime('%Y%m%d_%H%M%S')}_0100.MP4"
    write_video(root / big, start=start, seconds=seconds, width=640, height=480, noise=True)
    full = (root / big).stat().st_size
    card[big] = file_digests(root / big)
    threshold = 32 << 20
    assert full > 8 * threshold
    store = tmp_path / "store"
    init_store(store, actor="tester")
    register(store)

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "avlog",
            "--store",
            str(store),
            "ingest",
            "--from",
            str(root),
            "--device-serial",
            SERIAL,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        sizes = []
        for part in (store / "tmp").glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                sizes.append(part.stat().st_size)
        if any(s >= threshold for s in sizes):
            os.truncate(root / big, full // 2)
            break
        time.sleep(0.001)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), card, big, full


@pytest.mark.slow
def test_source_truncated_while_copied_fails_that_clip_and_leaves_no_partial_object(tmp_path: Path) -> None:
    for attempt, seconds in enumerate((55, 110)):
        work = tmp_path / f"attempt{attempt}"
        result, card, big, full = _truncate_during_copy(work, seconds)
        assert "Traceback" not in result.stderr, result.stderr
        doc = json.loads(result.stdout) if result.stdout else {}
        statuses = {c["original_path"]: c["status"] for c in doc.get("clips", [])}
        if statuses.get(big) == "stored" and (work / "card" / big).stat().st_size == full:
            continue  # the copy finished before the cut could be made: try a bigger file
        break
    else:
        pytest.fail("the copy always finished before the source could be cut; the race was never run")
    store = work / "store"
    assert (work / "card" / big).stat().st_size == full // 2, "the source was never cut"
    failed = check_partial(result, card, big)
    assert any(word in failed["error"] for word in ("lists", "changed", "disappeared")), failed["error"]
    assert failed["blake3"] is None
    full_b3 = card[big][0]
    cut_b3 = file_digests(work / "card" / big)[0]
    names = object_names(store)
    assert full_b3 not in names and cut_b3 not in names, "a partial object entered the store"
    assert names == {b for rel, (b, _s) in card.items() if rel != big}
    assert big not in clip_rows(store)
    assert_objects_sound(store)
    verify = run_avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr


# -- running as an unprivileged user ----------------------------------------------------------------


def _blocked_dirs(paths: list[Path]) -> list[tuple[Path, set[str]]]:
    """Folders on the way to ``paths`` that others may not search, each with the entries needed below it."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        parts = path.resolve().parts
        for depth in range(1, len(parts)):
            folder, child = Path(*parts[:depth]), parts[depth]
            if not folder.stat().st_mode & stat.S_IXOTH:
                blocked.setdefault(folder, set()).add(child)
    return sorted(blocked.items(), key=lambda kv: len(kv[0].parts))


class Nobody:
    """Runs ``python -m avlog`` as uid/gid 65534 with no groups and no capabilities.

    The interpreter may sit below a folder only root can enter (``/root/.pyenv``).
    In a private mount namespace, each such folder is covered by a stand-in that
    holds bind mounts of just the entries the interpreter needs; nothing on disk
    changes and nothing is visible outside the run.
    """

    def __init__(self, world: Path):
        self.world = world
        needed = [Path(sys.executable), Path(sys.prefix), Path(sys.base_prefix), Path(avlog.__file__).parent]
        needed += [Path(p) for p in sys.path if p and Path(p).exists()]
        lines = ["set -e"]
        for n, (folder, children) in enumerate(_blocked_dirs(needed)):
            stand_in = world / f"stand-in-{n}"
            stand_in.mkdir(mode=0o755)
            stand_in.chmod(0o755)
            for child in sorted(children):
                real = folder / child
                target = stand_in / child
                if real.is_dir():
                    target.mkdir()
                else:
                    target.touch()
                lines.append(f"mount --bind '{real}' '{target}'")
            lines.append(f"mount --rbind '{stand_in}' '{folder}'")
        lines.append(f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"')
        self.script = "\n".join(lines)
        self.env = {
            **os.environ,
            "HOME": str(world),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AVLOG_USER": "nobody",
        }

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.script, "sh", *argv],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.world,
            timeout=120,
        )

    def avlog(self, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "avlog", "--store", str(store), *args)


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder every user may enter (pytest's own temporary folders are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="avlog-nobody-"))
    path.chmod(0o755)
    for parent in path.parents:
        assert parent.stat().st_mode & stat.S_IXOTH, f"{parent} is not searchable by others"
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def nobody(world: Path) -> Nobody:
    if os.geteuid() != 0:
        pytest.skip("switching to the nobody user needs root")
    require_tool("unshare")
    require_tool("setpriv")
    runner = Nobody(world)
    probe = runner.run(
        sys.executable,
        "-c",
        "import os, avlog; print(os.getuid(), os.getgid(), os.getgroups(), "
        "[l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(NOBODY), str(NOBODY), "[]", "0000000000000000"], probe.stdout
    return runner


def test_unreadable_recording_fails_alone_when_run_as_nobody(world: Path, nobody: Nobody) -> None:
    card_root = world / "card"
    card = small_card(card_root)
    bad = sorted(card)[0]
    (card_root / bad).chmod(0)
    for folder in [card_root, *card_root.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    store = world / "store"
    init_store(store, actor="tester")
    register(store)
    for p in [store, *store.rglob("*")]:
        os.chown(p, NOBODY, NOBODY)

    result = nobody.avlog(store, "ingest", "--from", str(card_root), "--device-serial", SERIAL, "--json")
    failed = check_partial(result, card, bad)
    assert "ermission" in failed["error"], failed["error"]
    assert_objects_sound(store)
    for p in (store / "objects").rglob("*"):
        assert p.stat().st_uid == NOBODY
    verify = nobody.avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = nobody.avlog(store, "audit", "verify")
    assert chain.returncode == 0, chain.stderr
    assert clip_rows(store) == {rel: h for rel, h in card.items() if rel != bad}


def test_card_folder_the_user_may_not_read_is_one_line_exit_1(world: Path, nobody: Nobody) -> None:
    card_root = world / "card"
    small_card(card_root, count=1)
    card_root.chmod(0o700)  # root's own folder
    store = world / "store"
    init_store(store, actor="tester")
    register(store)
    for p in [store, *store.rglob("*")]:
        os.chown(p, NOBODY, NOBODY)

    result = nobody.avlog(store, "ingest", "--from", str(card_root), "--device-serial", SERIAL)
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert str(card_root) in line and "permission" in line.lower(), line
    assert object_names(store) == set()


@pytest.mark.parametrize("access", ["as-created", "readable-by-all"])
def test_store_not_writable_by_the_user_is_one_line_exit_1(world: Path, nobody: Nobody, access: str) -> None:
    """A root-owned store, as ``init`` leaves it (others may not enter) or opened up for reading only."""
    card_root = world / "card"
    small_card(card_root, count=2)
    store = world / "store"
    init_store(store, actor="tester")
    register(store)
    if access == "readable-by-all":
        for p in [store, *store.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    before = (store / "catalog.sqlite").read_bytes()

    result = nobody.avlog(store, "ingest", "--from", str(card_root), "--device-serial", SERIAL)
    assert result.returncode == 1, result.stderr
    assert str(store) in error_line(result.stderr)
    assert object_names(store) == set()
    assert list((store / "tmp").iterdir()) == []
    assert (store / "catalog.sqlite").read_bytes() == before


# -- settings and catalog ---------------------------------------------------------------------------


def test_settings_below_the_art19_floor_are_refused(store: Path) -> None:
    (store / "avlog.toml").write_text("[retention]\nmin_days = 90\n", encoding="utf-8")
    for args in (("ls",), ("verify",), ("device", "list")):
        result = run_avlog(store, *args)
        assert result.returncode == 1, (args, result.stderr)
        line = error_line(result.stderr)
        assert "183" in line and "Art. 19" in line, line
        assert result.stdout == ""


@pytest.mark.parametrize("garbage", ["random", "text"])
def test_corrupt_catalog_is_one_line_exit_1(store: Path, tmp_path: Path, garbage: str) -> None:
    catalog = store / "catalog.sqlite"
    assert catalog.read_bytes()[:16] == b"SQLite format 3\x00"
    catalog.write_bytes(os.urandom(64 << 10) if garbage == "random" else b"this is not a catalog\n" * 3000)
    card = tmp_path / "card"
    small_card(card, count=1)
    for args in (
        ("ls",),
        ("verify",),
        ("audit", "verify"),
        ("ingest", "--from", str(card), "--device-serial", SERIAL),
    ):
        result = run_avlog(store, *args)
        assert result.returncode == 1, (args, result.returncode, result.stderr)
        assert "catalog" in error_line(result.stderr)
    assert object_names(store) == set()
