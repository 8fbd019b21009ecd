"""Clearing a recorder's card after ingest (Art. 18: officers keep no private copies).

Nothing is deleted unless every recording of the run is committed in the
catalog, its object re-reads from the store's disk with both digests right, and
the file on the card is still the very one that was read, with the bytes that
were hashed. Then exactly those files are deleted, nothing else, and the
deletion is audited before the first file goes. Any doubt deletes nothing.

Which files: only items whose bytes are in the store (``stored``,
``duplicate``). An item whose clip was purged before (``rehandover``) is not in
the store: it stays on the card and is listed in :attr:`ClearReport.left`. One
failed item refuses the whole clearing.

What "the very file" means, by source (never a path rebuilt from shown names,
which may hold escapes, and on a hostile card may name another file):

- A mounted card (FolderSource): the identity kept when it was listed, the
  stored name bytes of each path component and ``(st_dev, st_ino)`` of each
  folder on the way, and the file's ``(st_dev, st_ino, size, mtime_ns)``.
  Each folder is opened component by component with ``O_NOFOLLOW |
  O_DIRECTORY`` and checked; the file is unlinked relative to its folder after
  ``stat`` there shows the same identity. A name that is not UTF-8 is deleted
  by its stored bytes.
- A raw FAT12/16/32 card: the location kept when it was read, the byte offsets
  and bytes of its directory slots, its first cluster and size; the card is
  parsed afresh and each entry must be found there unchanged, unambiguous and
  not cross-linked, then it is erased by location, not handed by name to mtools'
  ``mdel`` (which resolves names its own way, and so could delete another
  file). :mod:`avlog.ingest.fatclear` says how, and why.
- A raw exFAT card is never written: mount it read-write and clear it there.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from avlog.context import Context
from avlog.errors import PartialFailure
from avlog.i18n import _, ngettext
from avlog.ingest import fatclear
from avlog.ingest.cardfs import FatFS
from avlog.ingest.devices import read_mounts
from avlog.ingest.pipeline import GuardedReader, SourceReadError
from avlog.ingest.report import IngestReport, ItemResult
from avlog.ingest.sources import CardImageSource, FileIdentity, FolderSource, Source, SourceEntry
from avlog.store.hashing import copy_and_hash

#: Item statuses whose bytes are in the store: only these are ever deleted from a card.
DELETABLE = ("stored", "duplicate")


class ClearRefused(PartialFailure):
    """The card was not cleared: the reason says which doubt stopped it (exit 4)."""


class ClearFailed(ClearRefused):
    """Deleting went wrong part-way (a card pulled out, a tool failing); what was asked is audited."""


@dataclass
class ClearReport:
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # listed by the run but not in the store: left on the card


def _refuse(reason: str) -> ClearRefused:
    return ClearRefused(_("the card was not cleared, nothing was deleted: {reason}").format(reason=reason))


def _check_writable(source: Source, confirmed: bool) -> None:
    if isinstance(source, FolderSource):
        if not os.access(source.root, os.W_OK):
            raise _refuse(_("the card is not mounted read-write"))
        return
    if isinstance(source, CardImageSource) and source.kind == "fat":
        if not confirmed:
            raise _refuse(_("the card is read raw; confirm the deletion with --yes"))
        _refuse_if_mounted(source)  # cheap, and before the card is read again to prove it
        return
    raise _refuse(_("an exFAT card read raw cannot be cleared; mount it read-write and run again"))


def _check_stored(ctx: Context, report: IngestReport, items: list[ItemResult]) -> None:
    """Every item to delete is committed in the catalog and its object is sound on the store's disk."""
    for item in items:
        assert item.blake3 is not None
        clip = ctx.catalog.clip_by_key(report.device_serial, item.original_path, item.blake3)
        if clip is None or clip["state"] != "stored":
            raise _refuse(_("{path} is not committed in the catalog").format(path=item.original_path))
        problem = ctx.objects.check(item.blake3, clip["size"], clip["sha256"])
        if problem is not None:
            state = _("missing") if problem == "missing" else _("altered")
            raise _refuse(_("the store's copy of {path} is {state}").format(path=item.original_path, state=state))
        if item.sha256 != clip["sha256"] or item.size != clip["size"]:
            raise _refuse(_("{path} is not committed in the catalog").format(path=item.original_path))


def _same_content(item: ItemResult, opened: BinaryIO) -> bool:
    """The file on the card, read again in full, has the digests and size the store has; a read error refuses."""
    try:
        with opened as raw:
            read = copy_and_hash(GuardedReader(raw, item.original_path), None)  # type: ignore[arg-type]
    except (OSError, EOFError, SourceReadError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _refuse(
            _("{path} cannot be read again: {reason}").format(path=item.original_path, reason=reason)
        ) from exc
    return (read.blake3, read.sha256, read.size) == (item.blake3, item.sha256, item.size)


# -- a mounted card: by identity -------------------------------------------------------------------------


def _open_folder(source: FolderSource, identity: FileIdentity) -> int:
    """The file's folder, opened component by component without following links; each must be the one listed."""
    fd = os.open(source._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _dev_ino(os.fstat(fd)) != identity.folders[0]:
            raise OSError(errno.ESTALE, _("the card's folder is not the one that was read"))
        for name, expected in zip(identity.parts[:-1], identity.folders[1:], strict=True):
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = inner
            if _dev_ino(os.fstat(fd)) != expected:
                raise OSError(errno.ESTALE, _("a folder on its path is not the one that was read"))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _dev_ino(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _still_there(fd: int, identity: FileIdentity) -> bool:
    try:
        return identity.matches(os.stat(identity.parts[-1], dir_fd=fd, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _prove_folder(source: FolderSource, items: list[ItemResult]) -> list[tuple[ItemResult, FileIdentity]]:
    targets = []
    for item in items:
        entry: SourceEntry | None = item.entry
        if entry is None or not isinstance(entry.handle, FileIdentity):
            raise _refuse(_("{path} has no record of which file it was on the card").format(path=item.original_path))
        identity = entry.handle
        try:
            fd = _open_folder(source, identity)
        except OSError as exc:
            raise _refuse(
                _("{path} changed on the card since it was read: {reason}").format(
                    path=item.original_path, reason=exc.strerror or exc
                )
            ) from exc
        try:
            # The file itself, opened in the folder just checked: nothing on its path is resolved again.
            file_fd = os.open(identity.parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            file_fd = None
        except OSError as exc:
            raise _refuse(
                _("{path} cannot be read again: {reason}").format(path=item.original_path, reason=exc.strerror or exc)
            ) from exc
        finally:
            os.close(fd)
        if file_fd is None or not identity.matches(os.fstat(file_fd)):
            if file_fd is not None:
                os.close(file_fd)
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        if not _same_content(item, open(file_fd, "rb", buffering=0)):  # noqa: SIM115 - _same_content closes it
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        targets.append((item, identity))
    return targets


def _delete_from_folder(source: FolderSource, targets: list[tuple[ItemResult, FileIdentity]]) -> None:
    for item, identity in targets:
        try:
            fd = _open_folder(source, identity)
            try:
                if not _still_there(fd, identity):
                    raise OSError(errno.ESTALE, _("the file changed while the card was being cleared"))
                os.unlink(identity.parts[-1], dir_fd=fd)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ClearFailed(
                _("the card could not be cleared completely: {path}: {reason}").format(
                    path=item.original_path, reason=exc.strerror or exc
                )
            ) from exc


# -- a raw card must not be mounted ----------------------------------------------------------------------


def _sysfs_family(major: int, minor: int) -> set[tuple[int, int]]:
    """A block device with its partitions, or a partition with its disk and the disk's other partitions."""

    def dev_of(folder: Path) -> tuple[int, int] | None:
        try:
            text = (folder / "dev").read_text().strip()
        except OSError:
            return None
        a, b = text.split(":")
        return int(a), int(b)

    family = {(major, minor)}
    base = Path(f"/sys/dev/block/{major}:{minor}")
    try:
        base = base.resolve(strict=True)
    except OSError:
        return family
    disk = base.parent if (base / "partition").exists() else base
    for folder in [disk, *disk.iterdir()]:
        number = dev_of(folder) if folder.is_dir() else None
        if number is not None:
            family.add(number)
    return family


def _loop_backed(path: Path) -> bool:
    """Whether an image file is attached to a loop device (and so possibly mounted through it)."""
    target = os.path.realpath(path)
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if os.path.realpath(backing.read_text().strip()) == target:
                return True
        except OSError:
            continue
    return False


def _refuse_if_mounted(source: CardImageSource) -> None:
    """Never write raw into a filesystem the kernel may have mounted: the node, its disk or partitions, a loop."""
    try:
        st = os.stat(source.path)
    except OSError:
        return
    if stat.S_ISBLK(st.st_mode):
        mounted = set(read_mounts())
        if _sysfs_family(os.major(st.st_rdev), os.minor(st.st_rdev)) & mounted:
            raise _refuse(_("the card is mounted; clear it through its mount point"))
    elif _loop_backed(source.path):
        raise _refuse(_("the card image is attached to a loop device; detach it first"))


# -- the whole clearing ----------------------------------------------------------------------------------


def clear_card(ctx: Context, source: Source, report: IngestReport, *, confirmed: bool) -> ClearReport:
    """Delete the run's recordings from the card once each is proven safe in the store and unchanged on the card."""
    _check_writable(source, confirmed)
    if report.failed:
        raise _refuse(
            ngettext("{n} file failed to ingest", "{n} files failed to ingest", report.failed).format(n=report.failed)
        )
    if report.stopped or report.aborted:
        raise _refuse(_("the ingest ended before every file on the card was read"))
    items = [i for i in report.items if i.status in DELETABLE]
    left = [i.original_path for i in report.items if i.status not in DELETABLE]
    _check_stored(ctx, report, items)
    folder_targets: list[tuple[ItemResult, FileIdentity]] = []
    card_targets: list[fatclear.CardTarget] = []
    fs: FatFS | None = None
    if isinstance(source, FolderSource):
        folder_targets = _prove_folder(source, items)
    else:
        assert isinstance(source, CardImageSource)
        try:
            fs, card_targets = fatclear.prove(source, items, _same_content)
        except fatclear.NotProved as exc:
            raise _refuse(str(exc)) from exc
    files = [{"path": i.original_path, "blake3": i.blake3, "size": i.size} for i in items]
    details = {"ingest": report.ingest_id, "source": source.location, "files": files}
    if left:
        details["left"] = left
    # Recorded before the first file goes: a crash mid-deletion still leaves its trace (Art. 18, 27).
    with ctx.catalog.change():
        ctx.catalog.audit("device.clear.start", f"device:{report.device_serial}", details)
    try:
        if isinstance(source, FolderSource):
            _delete_from_folder(source, folder_targets)
        else:
            assert isinstance(source, CardImageSource) and fs is not None
            try:
                fatclear.erase(source, fs, card_targets)
            except fatclear.NotProved as exc:  # the last look, on the handle that writes
                raise _refuse(str(exc)) from exc
            except fatclear.NotErased as exc:
                raise ClearFailed(str(exc)) from exc
    except BaseException as exc:
        with ctx.catalog.change():
            ctx.catalog.audit("device.clear.failed", f"device:{report.device_serial}", {**details, "error": str(exc)})
        raise
    with ctx.catalog.change():
        ctx.catalog.audit("device.clear", f"device:{report.device_serial}", details)
    return ClearReport(deleted=[i.original_path for i in items], left=left)
