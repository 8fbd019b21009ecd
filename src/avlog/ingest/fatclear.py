"""Clearing a raw FAT12/16/32 card by location: find each proved entry again, then erase exactly it.

The entry of each file to delete is the one that was read: the byte offsets
and bytes of its directory slots (long-name parts and 8.3 entry), its first
cluster and size, kept in its handle. :func:`prove` parses the card afresh and
requires, for each, the entry at its location with the same bytes and path, a
name no sibling shares (without case, or by 8.3 name) anywhere on its path, a
chain that is exactly the one read and ends where its size does, clusters no
other file or folder uses, FAT copies that agree, and the same content.

Deleting is done here, by location, not with mtools' ``mdel``: mdel finds a
file by name, matching long and short names without case and reading ``[``
``*`` ``?`` as patterns, so the name handed to it can name another entry than
the one proved (that is how a settings file was once deleted in a recording's
place: an 8.3 name holding ``/``), and it cannot name entries whose stored
names are not valid 8.3 at all. By location, :func:`erase` writes exactly: the
first byte of each of the entry's slots set to 0xE5, then its clusters freed in
every FAT copy and the FSInfo free count raised, as a FAT driver deletes. The
slots are flushed before the clusters are freed, so a crash in between leaves
lost clusters (which fsck reclaims), never an entry pointing at free clusters.
Afterwards the card is read back: every slot must show deleted, every freed
entry as written.

Everything is done by runs of clusters, never cluster lists, so a large card
clears in seconds and small memory.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from avlog.i18n import _
from avlog.ingest.cardfs import CardFS, CardHandle, FatFS, Listed, encode_entry, entry_span
from avlog.ingest.report import ItemResult
from avlog.ingest.sources import CardImageSource, SourceEntry

_FSINFO_SIGNATURES = ((0, 0x41615252), (484, 0x61417272), (508, 0xAA550000))


class NotProved(Exception):
    """A doubt about the card: nothing may be deleted. The message is the reason, a whole sentence."""


class NotErased(Exception):
    """Writing the card failed part-way, after every check had passed. The message says so, a whole sentence."""


@dataclass
class CardTarget:
    """One file of a raw FAT card to delete: its entry as found again, and the runs of clusters it frees."""

    item: ItemResult
    handle: CardHandle
    runs: list[tuple[int, int]]  # (first cluster, count)


def prove(
    source: CardImageSource, items: list[ItemResult], same_content: Callable[[ItemResult, BinaryIO], bool]
) -> tuple[FatFS, list[CardTarget]]:
    """Find each entry again at its location on a freshly parsed card, unchanged, unambiguous, not cross-linked."""
    try:
        fs = source.reread()
        listing = list(fs.walk())
    except (OSError, ValueError) as exc:  # CardDamage, or the card answering EIO
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NotProved(_("the card cannot be read again: {reason}").format(reason=reason)) from exc
    if not isinstance(fs, FatFS) or not isinstance(source.fs, FatFS) or _geometry(fs) != _geometry(source.fs):
        raise NotProved(_("the card's boot sector changed since it was read"))
    damaged = [e for e in listing if e.error is not None]
    if damaged:
        raise NotProved(
            _("{path} cannot be read on the card: {reason}").format(path=damaged[0].path, reason=damaged[0].error)
        )
    by_slots = {e.handle.slots: e for e in listing if e.handle is not None}
    targets: list[CardTarget] = []
    for item in items:
        entry: SourceEntry | None = item.entry
        if entry is None or not isinstance(entry.handle, CardHandle):
            raise NotProved(_("{path} has no record of where it was on the card").format(path=item.original_path))
        then: CardHandle = entry.handle
        found = by_slots.get(then.slots)
        now = found.handle if found is not None else None
        if (
            found is None
            or now is None
            or found.path != entry.path
            or (now.raw, now.first_cluster, now.size) != (then.raw, then.first_cluster, then.size)
        ):
            raise NotProved(_("{path} changed on the card since it was read").format(path=item.original_path))
        if now.ambiguous:
            raise NotProved(
                _("{path} shares its name with another entry of its folder or of a folder on its path").format(
                    path=item.original_path
                )
            )
        try:
            runs = fs.runs(now, exact_end=True)
        except OSError as exc:  # CardDamage, or the card answering EIO
            raise NotProved(
                _("{path} cannot be cleared: {reason}").format(path=item.original_path, reason=exc.strerror)
            ) from exc
        if now.size == 0 and now.first_cluster != 0:
            raise NotProved(_("{path} holds clusters its size does not account for").format(path=item.original_path))
        if now.size and source.read_runs.get(then.slots) != runs:
            raise NotProved(_("{path} changed on the card since it was read").format(path=item.original_path))
        if not same_content(item, fs.open(now, runs)):
            raise NotProved(_("{path} changed on the card since it was read").format(path=item.original_path))
        targets.append(CardTarget(item, now, runs))
    _refuse_cross_links(fs, listing, targets)
    _refuse_disagreeing_fats(fs, targets)
    return fs, targets


def _geometry(fs: FatFS) -> tuple[object, ...]:
    return (fs.bits, fs.cluster_size, fs.cluster_count, fs.data_offset, tuple(fs.fat_offsets), fs.active_fat)


def _refuse_cross_links(fs: CardFS, listing: list[Listed], targets: list[CardTarget]) -> None:
    """No cluster to be freed may belong to anything else on the card: another file, a folder, or two targets.

    One byte per cluster of the card marks what is to be freed (a few MiB even
    for a large card); each run is looked up with ``find``, not cluster by cluster.
    """
    mark = bytearray(fs.cluster_count + 2)
    for target in targets:
        for start, length in target.runs:
            if mark.find(1, start, start + length) != -1:
                raise NotProved(_("{path} shares clusters with another file").format(path=target.item.original_path))
            mark[start : start + length] = b"\x01" * length

    def owner(cluster: int) -> str:
        return next(t.item.original_path for t in targets for a, n in t.runs if a <= cluster < a + n)

    for cluster in fs.folder_clusters:
        if mark[cluster]:
            raise NotProved(_("{path} shares clusters with a folder").format(path=owner(cluster)))
    mine = {t.handle.slots for t in targets}
    for entry in listing:
        if entry.handle is None or entry.handle.slots in mine or entry.handle.size == 0:
            continue
        for start, length in fs.lenient_runs(entry.handle):
            hit = mark.find(1, start, start + length)
            if hit != -1:
                raise NotProved(_("{path} shares clusters with another file").format(path=owner(hit)))


def _fat_spans(fs: FatFS, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where the FAT entries of each run lie in one FAT copy: (offset in the FAT, byte count)."""
    spans = []
    for start, length in runs:
        first, _width = entry_span(fs.bits, start)
        last, width = entry_span(fs.bits, start + length - 1)
        spans.append((first, last + width - first))
    return spans


def _refuse_disagreeing_fats(fs: FatFS, targets: list[CardTarget]) -> None:
    """Every FAT copy must say the same about the clusters to be freed (a run's entries compared as bytes)."""
    for target in targets:
        for at, count in _fat_spans(fs, target.runs):
            copies = {fs.region.pread(offset + at, count) for offset in fs.fat_offsets}
            if len(copies) > 1:
                raise NotProved(_("the card's FAT copies disagree about {path}").format(path=target.item.original_path))


def _is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def erase(source: CardImageSource, fs: FatFS, targets: list[CardTarget]) -> None:
    """Mark each entry's slots deleted, flush, free its clusters in every FAT copy, flush, and read it all back."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_EXCL if _is_block_device(source.path) else 0)
    try:
        fd = os.open(source.path, flags)  # a block device the kernel has mounted refuses O_EXCL
    except OSError as exc:
        raise NotProved(_("the card cannot be opened for writing: {reason}").format(reason=exc.strerror)) from exc
    base = source.offset
    try:
        for target in targets:  # the last look, on the very handle that writes
            for offset, expected in zip(target.handle.slots, _slots_of(target.handle), strict=True):
                if os.pread(fd, 32, base + offset) != expected:
                    raise NotProved(
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
            raise NotErased(
                _("the card could not be cleared completely: {reason}").format(reason=exc.strerror or exc)
            ) from exc
        for target in targets:
            for offset, before in zip(target.handle.slots, _slots_of(target.handle), strict=True):
                if os.pread(fd, 32, base + offset) != b"\xe5" + before[1:]:
                    raise NotErased(
                        _("the card could not be cleared completely: {path} is not deleted on the card").format(
                            path=target.item.original_path
                        )
                    )
        if any(os.pread(fd, len(data), offset) != data for offset, data in written):
            raise NotErased(_("the card could not be cleared completely: its FAT was not written"))
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
