"""Content-addressed object files: ``objects/ab/<blake3 hex>``, read-only, complete, proven.

A write goes to ``tmp/`` on the same filesystem, is fsynced, read back from
disk and re-hashed, made read-only, renamed into place, and the folder is
fsynced. A crash at any point leaves either no object or a complete, verified
one; leftovers in ``tmp/`` are never read as data and are swept away later.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from avlog.errors import DiskFull, IntegrityError, StoreError
from avlog.i18n import _
from avlog.store.hashing import Digests, ProgressFn, blake3_of_file, copy_and_hash, digests_of_file

HEX_RE = re.compile(r"^[0-9a-f]{64}$")


class CopyNotProven(IntegrityError):
    """The bytes read back from the written copy do not hash to what was read from the source."""


@dataclass(frozen=True)
class PutResult:
    digests: Digests
    created: bool  # False when the store already held this content
    replaced: bool = False  # a damaged object of this name gave way to the proven copy


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(tmp: Path) -> None:
    """Remove a partial copy; on a failing disk even that may fail, and then ``clean_tmp`` removes it later."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Room kept free for the catalog when no settings say otherwise (``[store] reserve_mb``).
DEFAULT_RESERVE_MB = 256


class ObjectStore:
    def __init__(self, root: Path, reserve_mb: int = DEFAULT_RESERVE_MB):
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.reserve_mb = reserve_mb

    def path(self, hexdigest: str) -> Path:
        return self.objects / hexdigest[:2] / hexdigest

    def exists(self, hexdigest: str) -> bool:
        return self.path(hexdigest).is_file()

    def size(self, hexdigest: str) -> int | None:
        """The object file's size, or None when it is missing."""
        try:
            return self.path(hexdigest).stat().st_size
        except FileNotFoundError:
            return None

    def iter_hexdigests(self) -> Iterator[str]:
        """Every object file's name, whatever the catalog says."""
        if not self.objects.is_dir():
            return
        for sub in sorted(self.objects.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if HEX_RE.match(f.name) and f.name[:2] == sub.name:
                        yield f.name

    def clean_tmp(self) -> int:
        """Remove partial writes left by processes that are gone (a crash, a kill). Returns how many."""
        removed = 0
        if not self.tmp.is_dir():
            return 0
        for f in self.tmp.iterdir():
            pid_text = f.name.split("-", 1)[0]
            if f.suffix == ".part" and pid_text.isdigit() and _pid_alive(int(pid_text)):
                continue
            if f.suffix == ".part" or f.name.startswith("stale-"):
                f.unlink(missing_ok=True)
                removed += 1
        return removed

    def free_bytes(self) -> int:
        """Free space on the store's disk for an ordinary user (what ``df`` calls available)."""
        try:
            fs = os.statvfs(self.root)
        except OSError as exc:
            raise StoreError(
                _("cannot see how much room the store's disk has ({path}): {reason}").format(
                    path=self.root, reason=exc.strerror or exc
                )
            ) from exc
        return fs.f_bavail * fs.f_frsize

    def ensure_room(self, nbytes: int = 0) -> None:
        """Refuse new work that would leave less than the reserve free on the store's disk.

        The catalog is SQLite in WAL mode, and the WAL's index (``catalog.sqlite-shm``)
        is a memory map: when the disk has no room left for it to grow, the
        process dies of SIGBUS instead of failing a write. So ingests and disc
        images, which can fill a disk, stop while ``reserve_mb`` is still free;
        small catalog changes (a flag, a case, a hold) may use the reserve, as
        they finish work people have begun. ``nbytes`` is what the new work
        is about to write on this disk.
        """
        free = self.free_bytes()
        reserve = self.reserve_mb << 20
        if free - nbytes >= reserve:
            return
        if nbytes <= 0:
            raise DiskFull(
                _(
                    "the store's disk is almost full: {free} MB free, less than the reserve of {reserve} MB "
                    "kept for the catalog ([store] reserve_mb); free space on {path} and run again"
                ).format(free=free >> 20, reserve=self.reserve_mb, path=self.root)
            )
        raise DiskFull(
            _(
                "the store's disk is almost full: {free} MB free, and {size} MB more would leave less than "
                "the reserve of {reserve} MB kept for the catalog ([store] reserve_mb); free space on {path} "
                "and run again"
            ).format(free=free >> 20, size=-(-nbytes >> 20), reserve=self.reserve_mb, path=self.root)
        )

    def put(
        self,
        reader: BinaryIO,
        progress: ProgressFn | None = None,
        validate: Callable[[Digests], None] | None = None,
        replace: Callable[[str], bool] | None = None,
    ) -> PutResult:
        """Copy ``reader`` into the store, proving the copy; idempotent for the same content.

        ``validate`` sees the digests before anything is installed; if it raises,
        the partial copy is removed and nothing enters ``objects/``. When
        ``replace(hexdigest)`` is true, an existing object of that name (one found
        damaged) gives way to the proven copy.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                digests = copy_and_hash(reader, fd, progress)
                if validate is not None:
                    validate(digests)
                os.fchmod(fd, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # read-only, made durable by the fsync
                os.fsync(fd)
            finally:
                os.close(fd)
            # The copy is proved, not assumed: read it back from the disk and re-hash it.
            try:
                proof, proof_size = blake3_of_file(tmp, from_disk=True)
            except OSError as exc:  # a bad sector, a failing disk: this copy is not proved, nothing more
                raise CopyNotProven(
                    _("the copy could not be read back from the store's disk ({path}): {reason}").format(
                        path=self.root, reason=exc.strerror or exc
                    )
                ) from exc
            if proof != digests.blake3 or proof_size != digests.size:
                raise CopyNotProven(
                    _("the copy written to {path} does not match the source (BLAKE3 {got} != {want})").format(
                        path=tmp, got=proof[:16], want=digests.blake3[:16]
                    )
                )
            outcome = self._install(tmp, digests, bool(replace and replace(digests.blake3)))
        except OSError as exc:
            _discard(tmp)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    _("the store's disk is full ({path}); free space and run again").format(path=self.root)
                ) from exc
            raise
        except BaseException:
            _discard(tmp)
            raise
        return PutResult(digests=digests, created=outcome != "existing", replaced=outcome == "replaced")

    def _install(self, tmp: Path, digests: Digests, replace: bool = False) -> str:
        """Link the proven copy into place: ``created``, ``existing`` (the store held it) or ``replaced``."""
        dest = self.path(digests.blake3)
        parent = dest.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(parent.parent)
        try:
            os.link(tmp, dest)  # atomic and never overwrites: two copies of one content cannot both win
        except FileExistsError:
            if dest.stat().st_size == digests.size and not replace:
                tmp.unlink()
                return "existing"
            # A damaged object (found by verify, or of the wrong size) gives way to the proven copy.
            os.replace(tmp, dest)
            fsync_dir(parent)
            return "replaced"
        tmp.unlink()
        fsync_dir(parent)
        return "created"

    def remove(self, hexdigest: str) -> None:
        """Delete one object durably (used only by the retention sweep)."""
        path = self.path(hexdigest)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def check(self, hexdigest: str, expected_size: int | None = None, expected_sha256: str | None = None) -> str | None:
        """Re-read one object from disk and re-hash it: ``None`` when sound, else ``"missing"`` or ``"mismatch"``.

        Both digests are recomputed in one pass, so an object that still has the
        right BLAKE3 but a catalog SHA-256 that no longer fits is caught too.
        """
        path = self.path(hexdigest)
        try:
            digests = digests_of_file(path, from_disk=True)
        except FileNotFoundError:
            return "missing"
        except PermissionError as exc:
            raise StoreError(_("cannot read {path}: permission denied").format(path=path)) from exc
        except OSError:
            return "mismatch"  # unreadable (a bad sector, a directory in its place): its bytes cannot be proved
        if digests.blake3 != hexdigest:
            return "mismatch"
        if expected_size is not None and digests.size != expected_size:
            return "mismatch"
        if expected_sha256 is not None and digests.sha256 != expected_sha256:
            return "mismatch"
        return None
