"""Reading a FAT12/16/32 or exFAT card raw, without being led astray by what is written on it.

A card is hostile input (Art. 14, 24: what it holds must reach the store whole
and unaltered, or fail and be named). dissect.fat parses the boot sector well,
but its walks trust the card: ``FAT.chain`` and ``ExFAT.get_cluster_chain``
follow a looping chain for ever, ``ExFAT()`` reads the whole tree in its
constructor, and a bad UTF-16 name raises. So the traversal is ours, and:

- Every chain walk is bounded. A file's chain is followed for exactly the
  clusters its size needs (never more than the volume has); a file whose chain
  ends early, loops, leaves the volume or meets a free or bad cluster, or whose
  size exceeds the volume, raises :class:`CardDamage` when it is opened, and so
  fails alone, named. A folder's chain is bounded by the largest folder the
  filesystem allows, and each folder cluster is read once in a walk: a folder
  whose clusters were read already (a cycle, a subfolder pointing at an
  ancestor) is listed as an error entry and the rest of the card goes on.
- Folders are walked with an explicit stack (no recursion limit to hit), at most
  :data:`MAX_DEPTH` deep, and the stop flag is looked at as the walk goes.
- Names go through :mod:`avlog.ingest.names`: never ``/``, NUL, a control
  character, ``.`` or ``..``; undecodable parts visibly escaped; stored bytes kept.
- A FAT long name is used only when its parts are in order and their checksum
  matches the short entry they precede; otherwise it belongs to no entry, as the
  FAT specification says, and the short name is shown (the entry notes it).
- FAT folders are read past a free (0x00) slot, as Linux does, so an entry a
  mounted card would show cannot hide from the raw reader; exFAT folders end at
  their end-of-directory entry, as the exFAT specification and Linux say.
- An exFAT entry set whose checksum or structure is wrong fails alone, named.
- Each file's handle keeps where its directory entries are on the card (byte
  offsets and bytes of every slot), its first cluster and size, so that clearing
  can prove it deletes the very entry that was read (``clearing.py``).

Metadata is read with ``os.pread`` (thread-safe, no shared position); file data
through dissect's RunlistStream over the bounded runlist. The FAT is read in
cached blocks rather than through ``FAT.get``'s one small read per cluster.
"""

from __future__ import annotations

import errno
import io
import math
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import BinaryIO

from dissect.fat.fat import validate_bpb
from dissect.util.stream import RunlistStream
from dissect.util.ts import dostimestamp

from avlog.i18n import _
from avlog.ingest import names

MAX_DEPTH = 64  # folders below the root; far past any recorder's layout
FAT_DIR_MAX_BYTES = 65536 * 32  # FAT: a folder holds at most 65,536 entries
EXFAT_DIR_MAX_BYTES = 256 << 20  # exFAT: a folder is at most 256 MiB
STOP_EVERY = 512  # directory slots read between two looks at the stop flag
SLOT = 32


class CardDamage(OSError):
    """A structure on the card that cannot be trusted; ``strerror`` says which and why (a whole sentence)."""

    def __init__(self, reason: str):
        super().__init__(errno.EIO, reason)


class _Stopped(Exception):
    """The stop flag was seen inside a walk."""


@dataclass(frozen=True, slots=True)
class CardHandle:
    """Where a file's directory entry is on the card and what it said when it was read."""

    slots: tuple[int, ...]  # volume byte offsets of its 32-byte slots: long-name parts then the short entry (FAT),
    # or the whole entry set (exFAT)
    raw: bytes  # those slots' bytes as read
    first_cluster: int
    size: int
    folder: int  # first cluster of the folder holding the entry; 0 for the fixed FAT12/16 root
    contiguous: bool = False  # exFAT NoFatChain: the clusters follow one another and the FAT is not used
    valid_size: int | None = None  # exFAT ValidDataLength when less than the size: the rest reads as zeros
    ambiguous: bool = False  # a name on its path collides with a sibling's (without case, or by its 8.3 name)
    is_dir: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    """One thing found on the card: a file, a file not to be read (``skip``), or what could not be read."""

    path: str
    size: int
    mtime: datetime | None
    handle: CardHandle | None
    parts: tuple[bytes, ...]
    encodings: tuple[str, ...]
    altered: frozenset[str]
    exact: bool  # every component is shown as the exact decoding of its stored name
    error: str | None = None
    skip: str | None = None


@dataclass(slots=True)
class _Rec:
    """One child of a folder, as read from its directory entries."""

    shown: names.Shown | None  # None: an entry too damaged to name (the folder is named instead)
    stored: bytes
    encoding: str
    short_key: bytes | None
    handle: CardHandle | None
    size: int = 0
    mtime: datetime | None = None
    is_dir: bool = False
    skip: str | None = None
    error: str | None = None
    ambiguous: bool = False


@dataclass(frozen=True, slots=True)
class _Where:
    prefix: str  # the folder's shown path with a trailing "/", "" for the root
    parts: tuple[bytes, ...] = ()
    encodings: tuple[str, ...] = ()
    altered: frozenset[str] = frozenset()
    exact: bool = True
    ambiguous: bool = False
    depth: int = 0


class Region:
    """A byte range of the card, read with ``pread``; file-like enough for RunlistStream, one per reader."""

    def __init__(self, fd: int, offset: int, size: int):
        self.fd, self.offset, self.size = fd, offset, size
        self._pos = 0

    def pread(self, pos: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``pos``, or :class:`CardDamage` when the card ends first."""
        if pos < 0 or pos + n > self.size:
            raise CardDamage(_("a structure lies past the end of the card"))
        data = os.pread(self.fd, n, self.offset + pos)
        if len(data) != n:
            raise CardDamage(_("the card ended before a structure it lists"))
        return data

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        self._pos = pos if whence == io.SEEK_SET else self._pos + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self._pos if n < 0 else min(n, self.size - self._pos)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.offset + self._pos)
        self._pos += len(data)
        return data


class _ValidPrefix(io.RawIOBase):
    """An exFAT file whose valid length is less than its size: the rest reads as zeros, as a mounted card gives."""

    def __init__(self, inner: BinaryIO, valid: int, size: int):
        super().__init__()
        self.inner, self.valid, self.size, self.pos = inner, valid, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        if self.pos < self.valid:
            data = self.inner.read(min(want, self.valid - self.pos))
            buffer[: len(data)] = data
            self.pos += len(data)
            return len(data)
        buffer[:want] = bytes(want)
        self.pos += want
        return want


class FatTable:
    """One copy of the FAT, read in cached blocks; entries beyond the volume's clusters are never asked for."""

    BLOCK = 64 << 10
    CACHED = 64  # blocks: at most 4 MiB of a FAT in memory

    def __init__(self, region: Region, offset: int, bits: int, entries: int, *, exfat: bool = False):
        self.region, self.offset, self.bits, self.exfat = region, offset, bits, exfat
        self.length = math.ceil(entries * bits / 8)
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def _block(self, index: int) -> bytes:
        block = self._cache.get(index)
        if block is None:
            start = index * self.BLOCK
            block = self.region.pread(self.offset + start, min(self.BLOCK, self.length - start))
            self._cache[index] = block
            if len(self._cache) > self.CACHED:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return block

    def _bytes(self, pos: int, n: int) -> bytes:
        first, last = pos // self.BLOCK, (pos + n - 1) // self.BLOCK
        data = b"".join(self._block(i) for i in range(first, last + 1))
        start = pos - first * self.BLOCK
        return data[start : start + n]

    def get(self, cluster: int) -> int:
        span, width = entry_span(self.bits, cluster)
        value = int.from_bytes(self._bytes(span, width), "little")
        return value if self.exfat else decode_entry(self.bits, cluster, value)  # exFAT entries use all 32 bits


def entry_span(bits: int, cluster: int) -> tuple[int, int]:
    """Where a cluster's entry lies in a FAT: byte offset and byte count (FAT12 entries share bytes)."""
    if bits == 12:
        return cluster + cluster // 2, 2
    return cluster * bits // 8, bits // 8


def decode_entry(bits: int, cluster: int, value: int) -> int:
    """A cluster's FAT entry from the bytes of its span (as an integer, little-endian)."""
    if bits == 12:
        return value >> 4 if cluster & 1 else value & 0x0FFF
    if bits == 32:
        return value & 0x0FFFFFFF  # FAT32 entries are 28 bits; the top 4 are reserved
    return value


def encode_entry(bits: int, cluster: int, span_value: int, entry: int) -> int:
    """The span's new value with the cluster's entry set to ``entry``, keeping the bits that are not its."""
    if bits == 12:
        if cluster & 1:
            return (span_value & 0x000F) | (entry << 4)
        return (span_value & 0xF000) | entry
    if bits == 32:
        return (span_value & 0xF0000000) | entry
    return entry


def _dos_time(date_time: int, local: tzinfo, centiseconds: int = 0) -> datetime | None:
    if not date_time >> 16:
        return None
    try:
        return dostimestamp(date_time, centiseconds).replace(tzinfo=local)
    except (ValueError, OverflowError):  # a month 13 or a day 0: no time rather than a wrong one
        return None


def _exfat_time(timestamp: int, centiseconds: int, tz_byte: int, local: tzinfo) -> datetime | None:
    moment = _dos_time(timestamp, local, min(centiseconds, 199))
    if moment is None or not tz_byte & 0x80:
        return moment
    quarter_hours = tz_byte & 0x7F  # the offset field is valid: 7-bit signed count of 15 minutes
    if quarter_hours & 0x40:
        quarter_hours -= 0x80
    return moment.replace(tzinfo=timezone(timedelta(minutes=15 * quarter_hours)))


class _Slots:
    """The 32-byte slots of a folder, read a cluster (or the fixed root) at a time."""

    def __init__(self, region: Region, starts: list[int], chunk: int, count: int):
        self.region, self.starts, self.chunk, self.count = region, starts, chunk, count
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def get(self, index: int) -> tuple[int, bytes]:
        chunk_index, within = divmod(index * SLOT, self.chunk)
        data = self._cache.get(chunk_index)
        if data is None:
            data = self.region.pread(self.starts[chunk_index], self.chunk)
            self._cache[chunk_index] = data
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        return self.starts[chunk_index] + within, data[within : within + SLOT]


class CardFS:
    """What FAT and exFAT share: geometry, chain walks, the folder walk, opening files."""

    kind: str
    bits: int
    cluster_size: int
    cluster_count: int
    data_offset: int  # volume offset of cluster 2
    declared_size: int
    bad: int
    eoc_min: int
    eoc_max: int

    def __init__(self, fd: int, offset: int, size: int, local_tz: tzinfo):
        self.fd, self.offset, self.size, self.local_tz = fd, offset, size, local_tz
        self.region = Region(fd, offset, size)
        self.folder_clusters: set[int] = set()  # every folder cluster read by the last walk
        self.fat: FatTable

    @property
    def max_cluster(self) -> int:
        return self.cluster_count + 1

    # -- chains ----------------------------------------------------------------------------------------

    def _next(self, cluster: int, got: int, want: int | None) -> int | None:
        """The cluster after ``cluster`` (None at the end of the chain), or :class:`CardDamage` naming the fault."""
        value = self.fat.get(cluster)
        if self.eoc_min <= value <= self.eoc_max:
            return None
        if 2 <= value <= self.max_cluster:
            return value
        if value == self.bad:
            raise CardDamage(
                _("its cluster chain runs into cluster {cluster}, which is marked bad").format(cluster=cluster)
            )
        if value == 0:
            raise CardDamage(_("its cluster chain runs into cluster {cluster}, which is free").format(cluster=cluster))
        raise CardDamage(
            _("its cluster chain leaves the card at cluster {cluster} (next: {value})").format(
                cluster=cluster, value=value
            )
        )

    def _first(self, cluster: int) -> None:
        if not 2 <= cluster <= self.max_cluster:
            raise CardDamage(_("its first cluster {cluster} is not on the card").format(cluster=cluster))

    def chain(self, first: int, count: int, *, exact_end: bool = False) -> list[tuple[int, int]]:
        """The runs ``(cluster, length)`` of a FAT chain of ``count`` clusters, checked; never more are followed.

        With ``exact_end`` the chain must end right there (clearing frees exactly
        these clusters, so a longer chain is a doubt); reading tolerates a tail.
        """
        if count > self.cluster_count:
            raise CardDamage(_("its size is more than the whole card holds"))
        self._first(first)
        runs: list[tuple[int, int]] = []
        start, length, cluster = first, 1, first
        for got in range(1, count):
            after = self._next(cluster, got, count)
            if after is None:
                raise CardDamage(
                    _("its cluster chain ends after {got} of the {want} clusters its size needs").format(
                        got=got, want=count
                    )
                )
            if after == start + length:
                length += 1
            else:
                runs.append((start, length))
                start, length = after, 1
            cluster = after
        runs.append((start, length))
        if exact_end and self._next(cluster, count, count) is not None:
            raise CardDamage(_("its cluster chain goes on past the clusters its size needs"))
        _refuse_overlap(runs)
        return runs

    def runs(self, handle: CardHandle, *, exact_end: bool = False) -> list[tuple[int, int]]:
        """The clusters holding a file's bytes, as runs; :class:`CardDamage` when they cannot be trusted."""
        count = math.ceil(handle.size / self.cluster_size)
        if count == 0:
            return []
        if handle.size > self.cluster_count * self.cluster_size:
            raise CardDamage(_("its size ({size} bytes) is more than the whole card holds").format(size=handle.size))
        if handle.contiguous:
            self._first(handle.first_cluster)
            if handle.first_cluster + count - 1 > self.max_cluster:
                raise CardDamage(_("its clusters run past the end of the card"))
            return [(handle.first_cluster, count)]
        return self.chain(handle.first_cluster, count, exact_end=exact_end)

    def clusters_of(self, handle: CardHandle) -> list[int]:
        """Every cluster a file's bytes lie in, as far as its chain can be trusted (for clearing's cross-checks)."""
        try:
            runs = self.runs(handle)
        except CardDamage:
            runs = self._partial_runs(handle)
        return [c for start, length in runs for c in range(start, start + length)]

    def _partial_runs(self, handle: CardHandle) -> list[tuple[int, int]]:
        """A damaged chain up to its first fault, bounded as any walk."""
        count = min(math.ceil(handle.size / self.cluster_size), self.cluster_count)
        cluster, seen, order = handle.first_cluster, set(), []
        for got in range(count):
            if not 2 <= cluster <= self.max_cluster or cluster in seen:
                break
            seen.add(cluster)
            order.append(cluster)
            try:
                after = self._next(cluster, got, count)
            except CardDamage:
                break
            if after is None:
                break
            cluster = after
        return [(c, 1) for c in order]

    def _folder_chain(self, first: int, limit: int) -> tuple[list[int], str | None]:
        """A folder's clusters, each read once per walk; the reason it stops early, if it does."""
        clusters: list[int] = []
        try:
            self._first(first)
        except CardDamage as exc:
            return clusters, exc.strerror
        cluster: int | None = first
        while cluster is not None:
            if cluster in self.folder_clusters:
                return clusters, _(
                    "its cluster {cluster} belongs to a folder read already: the folders form a loop"
                ).format(cluster=cluster)
            if len(clusters) >= limit:
                return clusters, _("it is larger than a folder may be")
            self.folder_clusters.add(cluster)
            clusters.append(cluster)
            try:
                cluster = self._next(cluster, len(clusters), None)
            except CardDamage as exc:
                return clusters, exc.strerror
        return clusters, None

    def _claim(self, clusters: list[int]) -> str | None:
        """Mark a folder's clusters read; the reason it may not be read when one was read before."""
        for cluster in clusters:
            if cluster in self.folder_clusters:
                return _("its cluster {cluster} belongs to a folder read already: the folders form a loop").format(
                    cluster=cluster
                )
        self.folder_clusters.update(clusters)
        return None

    def _cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_size

    def _folder_slots(self, clusters: list[int]) -> _Slots:
        starts = [self._cluster_offset(c) for c in clusters]
        return _Slots(self.region, starts, self.cluster_size, len(clusters) * self.cluster_size // SLOT)

    # -- reading a file --------------------------------------------------------------------------------

    def open(self, handle: CardHandle, runs: list[tuple[int, int]] | None = None) -> BinaryIO:
        """A file's bytes through its checked runlist; :class:`CardDamage` when its chain cannot be trusted."""
        if handle.size == 0:
            return io.BytesIO(b"")
        if runs is None:
            runs = self.runs(handle)
        data = Region(self.fd, self.offset + self.data_offset, self.size - self.data_offset)
        runlist = [(start - 2, length) for start, length in runs]
        stream: BinaryIO = RunlistStream(data, runlist, handle.size, self.cluster_size)  # type: ignore[arg-type, assignment]
        if handle.valid_size is not None:
            return _ValidPrefix(stream, handle.valid_size, handle.size)  # type: ignore[return-value]
        return stream

    # -- the walk --------------------------------------------------------------------------------------

    def _root(self, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        raise NotImplementedError

    def _subfolder(self, rec: _Rec, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        raise NotImplementedError

    def walk(self, should_stop: Callable[[], bool] | None = None) -> Iterator[Listed]:
        """Everything on the card, folder by folder in name order; returns early once ``should_stop()``."""
        stop = should_stop or (lambda: False)
        self.folder_clusters = set()
        try:
            records, problem = self._root(stop)
        except _Stopped:
            return
        stack: list[Iterator[Listed | tuple[_Rec, _Where]]] = [self._children(records, problem, _Where(""))]
        while stack:
            if stop():
                return
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            if isinstance(item, Listed):
                yield item
                continue
            rec, where = item
            if where.depth > MAX_DEPTH:
                reason = _("this folder was not read: it lies deeper than {n} folders").format(n=MAX_DEPTH)
                yield self._error(where, reason)
                continue
            try:
                records, problem = self._subfolder(rec, stop)
            except _Stopped:
                return
            stack.append(self._children(records, problem, where))

    def _error(self, where: _Where, reason: str) -> Listed:
        return Listed(
            where.prefix or "/",
            0,
            None,
            None,
            where.parts,
            where.encodings,
            where.altered,
            where.exact,
            error=reason,
        )

    def _children(
        self, records: list[_Rec], problem: str | None, where: _Where
    ) -> Iterator[Listed | tuple[_Rec, _Where]]:
        folded: dict[str, int] = {}
        short: dict[bytes, int] = {}
        for rec in records:
            if rec.shown is not None:
                key = names.fold(rec.shown.text)
                folded[key] = folded.get(key, 0) + 1
            if rec.short_key is not None:
                short[rec.short_key] = short.get(rec.short_key, 0) + 1
        for rec in records:
            rec.ambiguous = (rec.shown is not None and folded[names.fold(rec.shown.text)] > 1) or (
                rec.short_key is not None and short[rec.short_key] > 1
            )
        named = sorted((r for r in records if r.shown is not None), key=lambda r: r.shown.text)  # type: ignore[union-attr]
        for rec in named:
            assert rec.shown is not None
            altered = where.altered | rec.shown.altered
            exact = where.exact and not (rec.shown.altered - {names.LFN_MISMATCH, names.LFN_DAMAGED})
            ambiguous = where.ambiguous or rec.ambiguous
            handle = replace(rec.handle, ambiguous=ambiguous) if rec.handle is not None else None
            child = _Where(
                where.prefix + rec.shown.text + "/",
                (*where.parts, rec.stored),
                (*where.encodings, rec.encoding),
                altered,
                exact,
                ambiguous,
                where.depth + 1,
            )
            if rec.is_dir and rec.error is None and rec.skip is None:
                yield rec, child
                continue
            yield Listed(
                where.prefix + rec.shown.text,
                rec.size,
                rec.mtime,
                handle,
                child.parts,
                child.encodings,
                altered,
                exact,
                error=rec.error,
                skip=rec.skip,
            )
        for rec in records:
            if rec.shown is None:  # too damaged to be named: the folder holding it is named
                yield self._error(where, rec.error or "")
        if problem is not None:
            yield self._error(where, problem)


def _refuse_overlap(runs: list[tuple[int, int]]) -> None:
    """A chain that comes back to a cluster it passed (a loop) shows as two runs that overlap."""
    ordered = sorted(runs)
    for (a, length), (b, _length) in zip(ordered, ordered[1:], strict=False):
        if b < a + length:
            raise CardDamage(_("its cluster chain loops: cluster {cluster} comes twice").format(cluster=b))


# -- FAT12/16/32 ---------------------------------------------------------------------------------------


def lfn_checksum(short: bytes) -> int:
    """The checksum a long name's parts carry of the 8.3 entry they belong to (FAT specification)."""
    total = 0
    for byte in short[:11]:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


class FatFS(CardFS):
    kind = "fat"

    def __init__(self, fd: int, offset: int, size: int, local_tz: tzinfo):
        super().__init__(fd, offset, size, local_tz)
        boot = self.region.pread(0, 512)
        validate_bpb(boot)
        bps, spc, reserved, fats, root_entries, total16, _media, fat16 = struct.unpack_from("<HBHBHHBH", boot, 11)
        (total32,) = struct.unpack_from("<I", boot, 32)
        fat32_size, ext_flags, _version, root_cluster, fsinfo = struct.unpack_from("<IHHIH", boot, 36)
        self.sector_size = bps
        self.fat_sectors = fat16 or fat32_size
        total = total16 or total32
        if not self.fat_sectors:
            raise CardDamage(_("the boot sector gives the FAT no size"))
        root_sectors = math.ceil(root_entries * SLOT / bps)
        first_data = reserved + fats * self.fat_sectors + root_sectors
        if first_data >= total:
            raise CardDamage(_("the boot sector leaves no room for data"))
        self.cluster_size = bps * spc
        count = (total - first_data) // spc
        self.bits = 12 if count < 4085 else 16 if count < 65525 else 32
        if self.bits == 32 and root_entries:
            raise CardDamage(_("the boot sector is neither FAT12/16 nor FAT32"))
        if self.bits != 32 and not root_entries:
            raise CardDamage(_("the boot sector gives the root folder no room"))
        # Clusters the FAT has no entry for cannot be part of any chain.
        in_fat = self.fat_sectors * bps * 8 // self.bits - 2
        self.cluster_count = min(count, in_fat)
        if self.cluster_count < 1:
            raise CardDamage(_("the boot sector leaves no room for data"))
        self.bad = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[self.bits]
        self.eoc_min, self.eoc_max = self.bad + 1, {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[self.bits]
        self.declared_size = total * bps
        self.data_offset = first_data * bps
        self.root_offset = (reserved + fats * self.fat_sectors) * bps
        self.root_entries = root_entries
        self.root_cluster = root_cluster if self.bits == 32 else 0
        self.fat_offsets = [(reserved + n * self.fat_sectors) * bps for n in range(fats)]
        active = ext_flags & 0x0F if self.bits == 32 and ext_flags & 0x80 else 0  # mirroring off: one FAT is live
        if active >= fats:
            raise CardDamage(_("the boot sector names a FAT that is not there"))
        self.active_fat = active
        self.fsinfo_offset = fsinfo * bps if self.bits == 32 and 0 < fsinfo < reserved else None
        self.fat = FatTable(self.region, self.fat_offsets[active], self.bits, self.cluster_count + 2)

    def _root(self, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        if self.bits == 32:
            clusters, problem = self._folder_chain(self.root_cluster, math.ceil(FAT_DIR_MAX_BYTES / self.cluster_size))
            if not clusters:
                raise CardDamage(_("its root folder cannot be read: {reason}").format(reason=problem))
            records = self._records(self._folder_slots(clusters), self.root_cluster, True, stop)
            return records, None if problem is None else _("the root folder was read only in part: {reason}").format(
                reason=problem
            )
        slots = _Slots(self.region, [self.root_offset], self.root_entries * SLOT, self.root_entries)
        return self._records(slots, 0, True, stop), None

    def _subfolder(self, rec: _Rec, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        assert rec.handle is not None
        first = rec.handle.first_cluster
        clusters, problem = self._folder_chain(first, math.ceil(FAT_DIR_MAX_BYTES / self.cluster_size))
        if not clusters:
            return [], _("this folder was not read: {reason}").format(reason=problem)
        records = self._records(self._folder_slots(clusters), first, False, stop)
        if problem is not None:
            problem = _("this folder was read only in part: {reason}").format(reason=problem)
        return records, problem

    def _records(self, slots: _Slots, folder: int, is_root: bool, stop: Callable[[], bool]) -> list[_Rec]:
        records: list[_Rec] = []
        pending: list[tuple[int, bytes]] = []
        label_seen = False
        for index in range(slots.count):
            if index % STOP_EVERY == 0 and stop():
                raise _Stopped
            offset, raw = slots.get(index)
            if raw[0] in (0x00, 0xE5):  # free or deleted: structure; Linux reads on past a free slot, so do we
                pending = []
                continue
            attr = raw[11]
            if attr & 0x3F == 0x0F:  # a part of a long name; its last part comes first
                pending = [(offset, raw)] if raw[0] & 0x40 else [*pending, (offset, raw)]
                if len(pending) > 20:
                    pending = []
                continue
            long_name, used, kinds = self._long_name(pending, raw)
            pending = []
            if not is_root and index < 2 and attr & 0x10 and raw[:11] == (b".", b"..")[index].ljust(11) and not used:
                continue  # the folder's own "." and "..": structure
            cluster = int.from_bytes(raw[26:28], "little")
            if self.bits == 32:
                cluster |= int.from_bytes(raw[20:22], "little") << 16
            size = int.from_bytes(raw[28:32], "little")
            if is_root and not label_seen and attr & 0x1F == 0x08 and not cluster and not size:
                label_seen = True  # the volume's label: structure; any other entry marked so is counted as skipped
                continue
            short = names.show_short(raw[:11], bool(raw[12] & 0x08), bool(raw[12] & 0x10))
            if long_name is not None:
                shown = names.show_utf16(long_name)
                stored, encoding = long_name, "utf-16le"
            else:
                shown = short
                stored, encoding = bytes(raw[:11]), "fat-8.3"
            if kinds:
                shown = names.Shown(shown.text, shown.altered | kinds)
            is_dir = bool(attr & 0x10) and not attr & 0x08
            handle = CardHandle(
                slots=(*(o for o, _r in used), offset),
                raw=b"".join(r for _o, r in used) + raw,
                first_cluster=cluster,
                size=0 if is_dir else size,
                folder=folder,
                is_dir=is_dir,
            )
            records.append(
                _Rec(
                    shown=shown,
                    stored=stored,
                    encoding=encoding,
                    short_key=bytes(raw[:11]).upper(),
                    handle=handle,
                    size=handle.size,
                    mtime=_dos_time(
                        int.from_bytes(raw[24:26], "little") << 16 | int.from_bytes(raw[22:24], "little"), self.local_tz
                    ),
                    is_dir=is_dir,
                    skip="volume_label" if attr & 0x08 else None,
                )
            )
        return records

    @staticmethod
    def _long_name(
        pending: list[tuple[int, bytes]], short: bytes
    ) -> tuple[bytes | None, list[tuple[int, bytes]], set[str]]:
        """The long name the parts before a short entry give it, with those parts; or why none is used."""
        if not pending:
            return None, [], set()
        count = pending[0][1][0] & 0x3F
        in_order = (
            pending[0][1][0] & 0x40
            and len(pending) == count
            and all(raw[0] & 0x3F == count - i and (i == 0 or not raw[0] & 0x40) for i, (_o, raw) in enumerate(pending))
            and all(raw[12] == 0 for _o, raw in pending)
        )
        if not in_order:
            return None, [], {names.LFN_DAMAGED}
        checksum = lfn_checksum(short)
        if any(raw[13] != checksum for _o, raw in pending):
            return None, [], {names.LFN_MISMATCH}
        units = b"".join(raw[1:11] + raw[14:26] + raw[28:32] for _o, raw in reversed(pending))
        for i in range(0, len(units), 2):
            if units[i : i + 2] == b"\x00\x00":
                units = units[:i]
                break
        if not units or len(units) > 255 * 2:
            return None, [], {names.LFN_DAMAGED}
        return units, pending, set()


# -- exFAT ---------------------------------------------------------------------------------------------


def exfat_set_checksum(entries: bytes) -> int:
    """The checksum of an exFAT entry set, over every byte but the checksum field itself."""
    total = 0
    for i, byte in enumerate(entries):
        if i in (2, 3):
            continue
        total = ((0x8000 if total & 1 else 0) + (total >> 1) + byte) & 0xFFFF
    return total


class ExfatFS(CardFS):
    kind = "exfat"
    bits = 32
    bad = 0xFFFFFFF7
    eoc_min = eoc_max = 0xFFFFFFFF

    def __init__(self, fd: int, offset: int, size: int, local_tz: tzinfo):
        super().__init__(fd, offset, size, local_tz)
        boot = self.region.pread(0, 512)
        if boot[3:11] != b"EXFAT   " or boot[510:512] != b"\x55\xaa":
            raise CardDamage(_("the boot sector is not an exFAT one"))
        (volume_length, fat_offset, fat_length, heap_offset, cluster_count, root_cluster, _serial, _rev, flags) = (
            struct.unpack_from("<QIIIIIIHH", boot, 72)
        )
        bps_shift, spc_shift, fats = boot[108], boot[109], boot[110]
        if not 9 <= bps_shift <= 12 or spc_shift > 25 - bps_shift or fats not in (1, 2):
            raise CardDamage(_("the boot sector's sizes are not exFAT ones"))
        bps = 1 << bps_shift
        self.sector_size = bps
        self.cluster_size = bps << spc_shift
        if (
            fat_offset < 24
            or fat_length * bps < (cluster_count + 2) * 4
            or heap_offset < fat_offset + fats * fat_length
        ):
            raise CardDamage(_("the boot sector's FAT and data regions overlap"))
        if not cluster_count or heap_offset + cluster_count * (1 << spc_shift) > volume_length:
            raise CardDamage(_("the boot sector describes more clusters than the volume holds"))
        self.cluster_count = cluster_count
        self.declared_size = volume_length * bps
        self.data_offset = heap_offset * bps
        self.root_cluster = root_cluster
        active = flags & 1 if fats == 2 else 0  # TexFAT: the second FAT may be the live one
        self.fat_offsets = [(fat_offset + n * fat_length) * bps for n in range(fats)]
        self.active_fat = active
        self.fat = FatTable(self.region, self.fat_offsets[active], 32, cluster_count + 2, exfat=True)

    def _root(self, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        clusters, problem = self._folder_chain(self.root_cluster, math.ceil(EXFAT_DIR_MAX_BYTES / self.cluster_size))
        if not clusters:
            raise CardDamage(_("its root folder cannot be read: {reason}").format(reason=problem))
        records = self._records(self._folder_slots(clusters), self.root_cluster, stop)
        return records, None if problem is None else _("the root folder was read only in part: {reason}").format(
            reason=problem
        )

    def _subfolder(self, rec: _Rec, stop: Callable[[], bool]) -> tuple[list[_Rec], str | None]:
        handle = rec.handle
        assert handle is not None
        if not 0 < handle.size <= EXFAT_DIR_MAX_BYTES:
            return [], _("this folder was not read: it lists a size of {size} bytes").format(size=handle.size)
        try:
            runs = self.runs(handle)
        except CardDamage as exc:
            return [], _("this folder was not read: {reason}").format(reason=exc.strerror)
        clusters = [c for start, length in runs for c in range(start, start + length)]
        problem = self._claim(clusters)
        if problem is not None:
            return [], _("this folder was not read: {reason}").format(reason=problem)
        slots = self._folder_slots(clusters)
        slots.count = handle.size // SLOT
        return self._records(slots, handle.first_cluster, stop), None

    def _records(self, slots: _Slots, folder: int, stop: Callable[[], bool]) -> list[_Rec]:
        records: list[_Rec] = []
        index = 0
        while index < slots.count:
            if index % STOP_EVERY == 0 and stop():
                raise _Stopped
            offset, raw = slots.get(index)
            kind = raw[0]
            if kind == 0x00:
                break  # the end of the folder: every entry after it is unused (exFAT specification, Linux)
            if kind != 0x85:  # bitmap, up-case table, label, GUID, padding, deleted or stray entries: structure
                index += 1
                continue
            rec, used = self._entry_set(slots, index, folder)
            records.append(rec)
            index += used
        return records

    def _entry_set(self, slots: _Slots, index: int, folder: int) -> tuple[_Rec, int]:
        """One file or folder from its entry set; a damaged set fails alone and the walk goes on after its primary."""
        offset, primary = slots.get(index)
        count = primary[1]
        available = slots.count - index - 1
        got = [slots.get(index + 1 + i) for i in range(min(count, available))]
        parts = [(offset, primary), *got]

        def damaged(reason: str) -> tuple[_Rec, int]:
            name = _set_name(parts)
            error = _("its directory entries at byte {offset} of the card are damaged: {reason}").format(
                offset=self.offset + offset, reason=reason
            )
            shown = names.show_utf16(name) if name else None
            return _Rec(shown, name or b"", "utf-16le", None, None, error=error), 1

        if not 2 <= count <= 18:
            return damaged(_("the set declares {count} parts").format(count=count))
        if count > available:
            return damaged(_("the set runs past the end of its folder"))
        stream = got[0][1]
        if stream[0] != 0xC0:
            return damaged(_("the set has no stream extension"))
        length = stream[3]
        needed = math.ceil(length / 15)
        if not length or 1 + needed > count:
            return damaged(_("the name's length does not fit the set"))
        if any(raw[0] != 0xC1 for _o, raw in got[1 : 1 + needed]):
            return damaged(_("a part of the name is missing"))
        for _o, raw in got[1 + needed :]:
            if raw[0] & 0xC0 != 0xC0 or not raw[0] & 0x20:  # not an in-use secondary, or a critical one unknown here
                return damaged(_("the set holds an entry that does not belong to it"))
        whole = b"".join(raw for _o, raw in parts)
        if exfat_set_checksum(whole) != int.from_bytes(primary[2:4], "little"):
            return damaged(_("its checksum does not match"))
        name = b"".join(raw[2:32] for _o, raw in got[1 : 1 + needed])[: length * 2]
        attributes = int.from_bytes(primary[4:6], "little")
        is_dir = bool(attributes & 0x10)
        flags = stream[1]
        valid, first, size = (
            int.from_bytes(stream[8:16], "little"),
            int.from_bytes(stream[20:24], "little"),
            int.from_bytes(stream[24:32], "little"),
        )
        if valid > size:
            return damaged(_("its valid length is more than its size"))
        if size and not flags & 0x01:
            return damaged(_("it lists data but no allocation"))
        handle = CardHandle(
            slots=tuple(o for o, _r in parts),
            raw=whole,
            first_cluster=first,
            size=size,
            folder=folder,
            contiguous=bool(flags & 0x02),
            valid_size=valid if valid < size and not is_dir else None,
            is_dir=is_dir,
        )
        mtime = _exfat_time(int.from_bytes(primary[12:16], "little"), primary[21], primary[23], self.local_tz)
        rec = _Rec(
            names.show_utf16(name),
            name,
            "utf-16le",
            None,
            handle,
            size=0 if is_dir else size,
            mtime=mtime,
            is_dir=is_dir,
        )
        return rec, 1 + count


def _set_name(parts: list[tuple[int, bytes]]) -> bytes:
    """The name a damaged entry set still spells, if any, to name it by (cut at the first NUL)."""
    name = b"".join(raw[2:32] for _o, raw in parts[2:] if raw[0] == 0xC1)
    for i in range(0, len(name), 2):
        if name[i : i + 2] == b"\x00\x00":
            return name[:i]
    return name


def open_card_fs(fd: int, offset: int, size: int, local_tz: tzinfo) -> CardFS:
    """The filesystem at ``offset`` of an open card: :class:`ExfatFS` or :class:`FatFS`."""
    head = os.pread(fd, 11, offset)
    if head[3:11] == b"EXFAT   ":
        return ExfatFS(fd, offset, size, local_tz)
    return FatFS(fd, offset, size, local_tz)
