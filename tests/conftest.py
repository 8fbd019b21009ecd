"""Shared fixtures: a fresh store per test, the CLI runner, and real sample cards (folder, FAT32, exFAT)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import blake3
import pytest
from typer.testing import CliRunner

from avlog.cli import app
from avlog.context import Context, init_store, open_context
from avlog.samples import SampleCard, build_demo_card

TZ = ZoneInfo("Asia/Shanghai")

#: Clears the screen, turns text red, returns the cursor and starts a new line, rings, sends an 8-bit CSI,
#: reverses the rest of the line: everything a stored string should never do to a terminal.
HOSTILE = "\x1b[2J\x1b[31m红\r\n\x07\x9b1m\u202eX"
SHOWN = "\\x1b[2J\\x1b[31m红\\x0d\\x0a\\x07\\x9b1m\\u202eX"


def hidden(text: str) -> list[str]:
    """Characters of ``text`` that act on a terminal or are invisible (controls, format characters, surrogates,
    line and paragraph separators), the line breaks between lines aside."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


def require_tool(name: str) -> str:
    """The path of a command the tests need; a missing one fails the test (CI installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs the test tools")
    return path


def venv_tool(name: str) -> Path:
    """A command the test environment installs next to its interpreter (bagit.py, avlog): taken from there,
    never from PATH, which on a fresh machine holds none of them (or another installation's)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(
            f"{name} is not installed next to {sys.executable}; install the test extras: pip install -e '.[test]'"
        )
    return path


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Cli:
    """Runs avlog in-process against one store, stdout and stderr kept apart."""

    store: Path

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(app, ["--store", str(self.store), *args], env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)


def catalog_rows(store: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of a query on a store's catalog, read-only, as dicts (the tests' own view, not avlog's)."""
    conn = sqlite3.connect(f"file:{store / 'catalog.sqlite'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, list(params))]
    finally:
        conn.close()


def file_digests(path: Path) -> tuple[str, str]:
    """BLAKE3 and SHA-256 of a file, computed here and not by avlog."""
    b3, sha = blake3.blake3(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            b3.update(chunk)
            sha.update(chunk)
    return b3.hexdigest(), sha.hexdigest()


def file_sha256(path: Path) -> str:
    return file_digests(path)[1]


def stderr_lines(stderr: str) -> list[str]:
    """The non-blank lines of a run's stderr, which never holds a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


def error_line(stderr: str, report_lines: int = 0) -> str:
    """The one ``avlog:`` line closing a failing run's stderr; at most ``report_lines`` report lines precede it."""
    lines = stderr_lines(stderr)
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("avlog: ") and "internal error" not in lines[-1], stderr
    assert not any(line.startswith("avlog:") for line in lines[:-1]), stderr
    assert len(lines) <= report_lines + 1, f"expected at most {report_lines + 1} line(s) on stderr, got:\n{stderr}"
    return lines[-1]


def run_avlog(store: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs avlog as a separate process (for kills, other users, real exit codes)."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "avlog", "--store", str(store), *args],
        capture_output=True,
        text=True,
        **kwargs,
    )


def set_store_reserve(store: Path, megabytes: int) -> None:
    """Set ``[store] reserve_mb`` in a store's avlog.toml (stores on small test filesystems need a small one)."""
    settings = store / "avlog.toml"
    text = settings.read_text(encoding="utf-8")
    text, found = re.subn(r"(?m)^reserve_mb = .*$", f"reserve_mb = {megabytes}", text)
    if not found:
        text = text.replace("[store]\n", f"[store]\nreserve_mb = {megabytes}\n", 1)
    settings.write_text(text, encoding="utf-8")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    init_store(root, actor="tester")
    return root


@pytest.fixture
def cli(store: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("AVLOG_USER", "tester")
    return Cli(store)


@pytest.fixture
def ctx(store: Path) -> Iterator[Context]:
    context = open_context(store, actor="tester")
    yield context
    context.close()


def shift_end() -> datetime:
    """A shift that ended twenty minutes ago (so handover is on the same day, most of the time)."""
    return datetime.now(UTC) - timedelta(minutes=20)


@pytest.fixture
def demo_card(tmp_path: Path) -> SampleCard:
    return build_demo_card(tmp_path / "card", shift_end=shift_end(), tz=TZ)


def register(cli: Cli, serial: str = "BC-0001") -> None:
    result = cli("device", "register", serial, "--custodian", "张三", "--unit", "一中队")
    assert result.exit_code == 0, result.stderr


def make_fat32_image(source: Path, image: Path, size_mb: int = 64) -> Path:
    """A real FAT32 card image (mkfs.vfat) holding ``source``'s tree (mcopy, long UTF-8 names)."""
    require_tool("mkfs.vfat")
    require_tool("mcopy")
    subprocess.run(
        [shutil.which("mkfs.vfat"), "-F", "32", "-n", "CAMERA", "-C", str(image), str(size_mb * 1024)],
        check=True,
        capture_output=True,
    )
    entries = sorted(str(p) for p in source.iterdir())
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(["mcopy", "-s", "-m", "-i", str(image), *entries, "::/"], check=True, capture_output=True, env=env)
    return image


@contextlib.contextmanager
def exfat_mounted(image: Path) -> Iterator[Path]:
    """``image`` mounted read-write through exfat-fuse on a loop device, to build it as a camera would."""
    require_tool("mount.exfat-fuse")
    if os.geteuid() != 0:
        pytest.skip("filling an exFAT image needs root for the loop device and FUSE mount")
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True)
    device = loop.stdout.strip()
    mountpoint = image.with_suffix(".mnt")
    mountpoint.mkdir()
    try:
        subprocess.run(["mount.exfat-fuse", device, str(mountpoint)], check=True, capture_output=True)
        try:
            yield mountpoint
            subprocess.run(["sync"], check=True)
        finally:
            subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True, capture_output=True)
        mountpoint.rmdir()


def make_exfat_image(source: Path, image: Path, size_mb: int = 64) -> Path:
    """A real exFAT card image (mkfs.exfat), filled through exfat-fuse on a loop device."""
    require_tool("mkfs.exfat")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.exfat", "-L", "CAMERA", str(image)], check=True, capture_output=True)
    with exfat_mounted(image) as mountpoint:
        shutil.copytree(source, mountpoint, dirs_exist_ok=True)
    return image


@contextlib.contextmanager
def loop_ext4(image: Path, mountpoint: Path, size_mb: int) -> Iterator[Path]:
    """A fresh ext4 filesystem of ``size_mb`` MB in the file ``image``, loop-mounted at ``mountpoint`` (needs root);
    always unmounted afterwards."""
    require_tool("mkfs.ext4")
    require_tool("mount")
    if os.geteuid() != 0:
        pytest.skip("a loop mount needs root")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"the kernel refused the loop mount: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True)


def fill_fs(folder: Path, leave: int = 0, name: str = "filler") -> Path:
    """A file in ``folder`` taking its filesystem's free space until about ``leave`` bytes are left for an
    ordinary user (``leave=0``: every block, the ones ext4 keeps for root too). Returns the file."""
    filler = folder / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if leave:
            free = shutil.disk_usage(folder).free
            assert free > leave, f"only {free} bytes free, fewer than the {leave} to leave"
            os.posix_fallocate(fd, 0, free - leave)
        else:
            for size in (1 << 20, 1 << 16, 4096, 512, 1):
                block = b"\0" * size
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()
    return filler


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A freshly made 24 MB ext4 filesystem, loop-mounted; always unmounted afterwards."""
    with loop_ext4(tmp_path / "store-fs.img", tmp_path / "mnt", 24) as mountpoint:
        yield mountpoint
