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
  and bytes of its directory slots (long-name parts and short entry), its first
  cluster and size. The card is parsed afresh; each entry must be found at its
  location with the same bytes, the same path, a name no sibling shares
  (without case, or by 8.3 name) anywhere on its path, a chain that is exactly
  the one read and ends where its size does, clusters no other file or folder
  uses, FAT copies that agree, and the same content hash.

  Deleting is done here, by location, not with mtools' ``mdel``: mdel finds a
  file by name, matching long and short names without case and reading ``[``
  ``*`` ``?`` as patterns, so the name handed to it can name another entry than
  the one proved (that is how a settings file was once deleted in a
  recording's place), and it cannot name entries whose stored names are not
  valid 8.3 at all. By location, what is written is exactly: the first byte of
  each of the entry's slots set to 0xE5, then its clusters freed in every FAT
  copy and the FSInfo free count raised. The slots are flushed before the
  clusters are freed, so a crash in between leaves lost clusters (which fsck
  reclaims), never an entry pointing at free clusters. Afterwards the card is
  read back: every slot must show deleted, every freed entry zero.
- A raw exFAT card is never written: mount it read-write and clear it there.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from avlog.context import Context
from avlog.errors import PartialFailure
from avlog.i18n import _, ngettext
from avlog.ingest.cardfs import CardFS, CardHandle, FatFS, Listed, encode_entry, entry_span
from avlog.ingest.devices import read_mounts
from avlog.ingest.pipeline import GuardedReader, SourceReadError
from avlog.ingest.report import IngestReport, ItemResult
from avlog.ingest.sources import CardImageSource, FileIdentity, FolderSource, Source, SourceEntry
from avlog.store.hashing import Digests, copy_and_hash

#: Item statuses whose bytes are in the store: only these are ever deleted from a card.
DELETABLE = ("stored", "duplicate")

_FSINFO_SIGNATURES = ((0, 0x41615252), (484, 0x61417272), (508, 0xAA550000))


class ClearRefused(PartialFailure):
    """The card was not cleared: the reason says which doubt stopped it (exit 4)."""


class ClearFailed(ClearRefused):
    """Deleting went wrong part-way (a card pulled out, a tool failing); what was asked is audited."""


@dataclass
class ClearReport:
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # listed by the run but not in the store: left on the card


@dataclass
class _CardTarget:
    """One file of a raw FAT card to delete: its entry as found again, and the runs of clusters it frees."""

    item: ItemResult
    handle: CardHandle
    runs: list[tuple[int, int]]  # (first cluster, count)


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


def _same_content(item: ItemResult, read: Digests) -> bool:
    return (read.blake3, read.sha256, read.size) == (item.blake3, item.sha256, item.size)


def _rehash(item: ItemResult, opened: object) -> Digests:
    try:
        with opened as raw:  # type: ignore[attr-defined]
            return copy_and_hash(GuardedReader(raw, item.original_path), None)  # type: ignore[arg-type]
    except (OSError, EOFError, SourceReadError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _refuse(
            _("{path} cannot be read again: {reason}").format(path=item.original_path, reason=reason)
        ) from exc


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
        st = os.stat(identity.parts[-1], dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
        identity.dev,
        identity.ino,
        identity.size,
        identity.mtime_ns,
    )


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
            same = _still_there(fd, identity)
        finally:
            os.close(fd)
        if not same:
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        try:
            opened = source.open(entry)
        except OSError as exc:
            raise _refuse(
                _("{path} cannot be read again: {reason}").format(path=item.original_path, reason=exc.strerror or exc)
            ) from exc
        if not _same_content(item, _rehash(item, opened)):
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


# -- a raw FAT card: by location -------------------------------------------------------------------------


def _prove_card(source: CardImageSource, items: list[ItemResult]) -> tuple[FatFS, list[_CardTarget]]:
    """Find each entry again at its location on a freshly parsed card, unchanged, unambiguous, not cross-linked."""
    try:
        fs = source.reread()
        listing = list(fs.walk())
    except (OSError, ValueError) as exc:  # CardDamage, or the card answering EIO
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _refuse(_("the card cannot be read again: {reason}").format(reason=reason)) from exc
    if not isinstance(fs, FatFS) or not isinstance(source.fs, FatFS) or _geometry(fs) != _geometry(source.fs):
        raise _refuse(_("the card's boot sector changed since it was read"))
    damaged = [e for e in listing if e.error is not None]
    if damaged:
        raise _refuse(
            _("{path} cannot be read on the card: {reason}").format(path=damaged[0].path, reason=damaged[0].error)
        )
    by_slots = {e.handle.slots: e for e in listing if e.handle is not None}
    targets: list[_CardTarget] = []
    for item in items:
        entry: SourceEntry | None = item.entry
        if entry is None or not isinstance(entry.handle, CardHandle):
            raise _refuse(_("{path} has no record of where it was on the card").format(path=item.original_path))
        then: CardHandle = entry.handle
        found = by_slots.get(then.slots)
        now = found.handle if found is not None else None
        if (
            found is None
            or now is None
            or found.path != entry.path
            or (now.raw, now.first_cluster, now.size) != (then.raw, then.first_cluster, then.size)
        ):
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        if now.ambiguous:
            raise _refuse(
                _("{path} shares its name with another entry of its folder or of a folder on its path").format(
                    path=item.original_path
                )
            )
        try:
            runs = fs.runs(now, exact_end=True)
        except OSError as exc:  # CardDamage, or the card answering EIO
            raise _refuse(
                _("{path} cannot be cleared: {reason}").format(path=item.original_path, reason=exc.strerror)
            ) from exc
        if now.size == 0 and now.first_cluster != 0:
            raise _refuse(_("{path} holds clusters its size does not account for").format(path=item.original_path))
        if now.size and source.read_runs.get(then.slots) != runs:
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        if not _same_content(item, _rehash(item, fs.open(now, runs))):
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        targets.append(_CardTarget(item, now, runs))
    _refuse_cross_links(fs, listing, targets)
    _refuse_disagreeing_fats(fs, targets)
    return fs, targets


def _geometry(fs: FatFS) -> tuple[object, ...]:
    return (fs.bits, fs.cluster_size, fs.cluster_count, fs.data_offset, tuple(fs.fat_offsets), fs.active_fat)


def _refuse_cross_links(fs: CardFS, listing: list[Listed], targets: list[_CardTarget]) -> None:
    """No cluster to be freed may belong to anything else on the card: another file, a folder, or two targets.

    One byte per cluster of the card marks what is to be freed (a few MiB even
    for a large card); each run is looked up with ``find``, not cluster by cluster.
    """
    mark = bytearray(fs.cluster_count + 2)
    for target in targets:
        for start, length in target.runs:
            if mark.find(1, start, start + length) != -1:
                raise _refuse(_("{path} shares clusters with another file").format(path=target.item.original_path))
            mark[start : start + length] = b"\x01" * length

    def owner(cluster: int) -> str:
        return next(t.item.original_path for t in targets for a, n in t.runs if a <= cluster < a + n)

    for cluster in fs.folder_clusters:
        if mark[cluster]:
            raise _refuse(_("{path} shares clusters with a folder").format(path=owner(cluster)))
    mine = {t.handle.slots for t in targets}
    for entry in listing:
        if entry.handle is None or entry.handle.slots in mine or entry.handle.size == 0:
            continue
        for start, length in fs.lenient_runs(entry.handle):
            hit = mark.find(1, start, start + length)
            if hit != -1:
                raise _refuse(_("{path} shares clusters with another file").format(path=owner(hit)))


def _fat_spans(fs: FatFS, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where the FAT entries of each run lie in one FAT copy: (offset in the FAT, byte count)."""
    spans = []
    for start, length in runs:
        first, _width = entry_span(fs.bits, start)
        last, width = entry_span(fs.bits, start + length - 1)
        spans.append((first, last + width - first))
    return spans


def _refuse_disagreeing_fats(fs: FatFS, targets: list[_CardTarget]) -> None:
    """Every FAT copy must say the same about the clusters to be freed (a run's entries compared as bytes)."""
    for target in targets:
        for at, count in _fat_spans(fs, target.runs):
            copies = {fs.region.pread(offset + at, count) for offset in fs.fat_offsets}
            if len(copies) > 1:
                raise _refuse(_("the card's FAT copies disagree about {path}").format(path=target.item.original_path))


def _is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _erase_from_card(source: CardImageSource, fs: FatFS, targets: list[_CardTarget]) -> None:
    """Mark each entry's slots deleted, flush, free its clusters in every FAT copy, flush, and read it all back."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_EXCL if _is_block_device(source.path) else 0)
    try:
        fd = os.open(source.path, flags)  # a block device the kernel has mounted refuses O_EXCL
    except OSError as exc:
        raise _refuse(_("the card cannot be opened for writing: {reason}").format(reason=exc.strerror)) from exc
    base = source.offset
    try:
        for target in targets:  # the last look, on the very handle that writes
            for offset, expected in zip(target.handle.slots, _slots_of(target.handle), strict=True):
                if os.pread(fd, 32, base + offset) != expected:
                    raise _refuse(
                        _("{path} changed on the card since it was read").format(path=target.item.original_path)
                    )
        try:
            for target in targets:
                for offset in target.handle.slots:
                    os.pwrite(fd, b"\xe5", base + offset)
            os.fsync(fd)
            runs = _merged(sorted(run for t in targets for run in t.runs))  # FAT12 neighbours share a byte
            written = [
                (base + fat_offset + at, _freed(fd, base + fat_offset + at, count, fs.bits, run))
                for fat_offset in fs.fat_offsets
                for run, (at, count) in zip(runs, _fat_spans(fs, runs), strict=True)
            ]
            _raise_free_count(fd, base, fs, sum(length for _start, length in runs))
            os.fsync(fd)
        except OSError as exc:
            raise ClearFailed(
                _("the card could not be cleared completely: {reason}").format(reason=exc.strerror or exc)
            ) from exc
        for target in targets:
            for offset, before in zip(target.handle.slots, _slots_of(target.handle), strict=True):
                if os.pread(fd, 32, base + offset) != b"\xe5" + before[1:]:
                    raise ClearFailed(
                        _("the card could not be cleared completely: {path} is not deleted on the card").format(
                            path=target.item.original_path
                        )
                    )
        if any(os.pread(fd, len(data), offset) != data for offset, data in written):
            raise ClearFailed(_("the card could not be cleared completely: its FAT was not written"))
    finally:
        os.close(fd)


def _merged(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, length in runs:
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((start, length))
    return out


def _slots_of(handle: CardHandle) -> list[bytes]:
    return [handle.raw[i : i + 32] for i in range(0, len(handle.raw), 32)]


_FAT32_RESERVED = bytes(b & 0xF0 for b in range(256))  # the top 4 bits of a FAT32 entry are kept, not ours


def _freed(fd: int, at: int, count: int, bits: int, run: tuple[int, int]) -> bytes:
    """Write one run's FAT entries as free in one FAT copy; returns the bytes written there."""
    old = os.pread(fd, count, at)
    if len(old) != count:
        raise OSError(errno.EIO, _("the card ended inside its FAT"))
    if bits == 16:
        new = bytes(count)
    elif bits == 32:
        buffer = bytearray(count)
        buffer[3::4] = old[3::4].translate(_FAT32_RESERVED)
        new = bytes(buffer)
    else:  # FAT12: two entries share three bytes, so each is set on its own (FAT12 volumes are small)
        buffer = bytearray(old)
        start, length = run
        first, _width = entry_span(bits, start)
        for cluster in range(start, start + length):
            span, width = entry_span(bits, cluster)
            value = int.from_bytes(buffer[span - first : span - first + width], "little")
            buffer[span - first : span - first + width] = encode_entry(bits, cluster, value, 0).to_bytes(
                width, "little"
            )
        new = bytes(buffer)
    os.pwrite(fd, new, at)
    return new


def _raise_free_count(fd: int, base: int, fs: FatFS, freed: int) -> None:
    """FAT32's FSInfo keeps a count of free clusters; raise it when it is kept (0xFFFFFFFF: unknown)."""
    if fs.fsinfo_offset is None:
        return
    sector = os.pread(fd, 512, base + fs.fsinfo_offset)
    if len(sector) < 512 or any(int.from_bytes(sector[o : o + 4], "little") != v for o, v in _FSINFO_SIGNATURES):
        return
    free = int.from_bytes(sector[488:492], "little")
    if free == 0xFFFFFFFF or free > fs.cluster_count:
        return
    os.pwrite(fd, min(free + freed, fs.cluster_count).to_bytes(4, "little"), base + fs.fsinfo_offset + 488)


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
    card_targets: list[_CardTarget] = []
    fs: FatFS | None = None
    if isinstance(source, FolderSource):
        folder_targets = _prove_folder(source, items)
    else:
        assert isinstance(source, CardImageSource)
        fs, card_targets = _prove_card(source, items)
        _refuse_if_mounted(source)
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
            _erase_from_card(source, fs, card_targets)
    except BaseException as exc:
        with ctx.catalog.change():
            ctx.catalog.audit("device.clear.failed", f"device:{report.device_serial}", {**details, "error": str(exc)})
        raise
    with ctx.catalog.change():
        ctx.catalog.audit("device.clear", f"device:{report.device_serial}", details)
    return ClearReport(deleted=[i.original_path for i in items], left=left)
