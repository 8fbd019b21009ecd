"""What FAT and exFAT share: file handles, bounded chain walks, the folder walk, opening a file."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any, BinaryIO

from dissect.util.stream import RunlistStream

from avlog.i18n import _
from avlog.ingest import names
from avlog.ingest.cardfs.reading import SLOT, CardDamage, FatTable, Region, Slots, ValidPrefix

MAX_DEPTH = 64  # folders below the root; far past any recorder's layout
MAX_FOLDER_ENTRIES = 65536  # entries read from one folder: FAT's own limit, and exFAT folders are held to it
MAX_WAITING = 1 << 18  # entries read but not yet handed on, over all the folders the walk is inside
MAX_RUNS = 1 << 20  # pieces one file may lie in: its runlist stays some tens of MiB at most
STOP_EVERY = 512  # directory slots read between two looks at the stop flag


class FolderNotRead(Exception):
    """A folder the walk does not read, for the reason given (a sentence): it is named as failed, the walk goes on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def bounded_walk(
    first: Iterator[Any],
    count: int,
    *,
    descend: Callable[[Any], tuple[Any, int] | None],
    expand: Callable[[Any], tuple[Iterator[Any], int]],
    error: Callable[[Any, str], Any],
    stop: Callable[[], bool],
) -> Iterator[Any]:
    """A tree walked depth first with bounded memory, for a raw card and a folder card alike.

    ``first`` holds ``count`` items; ``descend(item)`` is ``(folder, depth)`` for a folder to go into, None
    for an item to hand on; ``expand(folder)`` lists a folder's items and their number (an ``OSError`` or
    :class:`FolderNotRead` fails that folder alone); ``error(folder, reason)`` is the item that names a folder
    not read. A folder deeper than :data:`MAX_DEPTH`, or whose items would make more than
    :data:`MAX_WAITING` wait at once, is named instead of read. Returns early once ``stop()``.
    """
    waiting = count
    stack = [first]
    while stack:
        if stop():
            return
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        waiting = max(0, waiting - 1)
        found = descend(item)
        if found is None:
            yield item
            continue
        folder, depth = found
        if depth > MAX_DEPTH:
            yield error(folder, _("this folder was not read: it lies deeper than {n} folders").format(n=MAX_DEPTH))
            continue
        try:
            children, n = expand(folder)
        except FolderNotRead as exc:
            yield error(folder, exc.reason)
            continue
        except OSError as exc:  # the card answering EIO under one folder: that folder fails alone
            yield error(folder, _("cannot list this folder: {reason}").format(reason=exc.strerror or exc))
            continue
        if waiting + n > MAX_WAITING:
            reason = _("this folder was not read: the folders above it hold too many entries waiting to be read")
            yield error(folder, reason)
            continue
        waiting += n
        stack.append(children)


class Stopped(Exception):
    """The stop flag was seen inside a walk."""


@dataclass(frozen=True, slots=True)
class CardHandle:
    """Where a file's directory entry is on the card and what it said when it was read."""

    slots: tuple[int, ...]  # volume byte offsets of its 32-byte slots: long-name parts then the short entry (FAT),
    # or the whole entry set (exFAT)
    raw: bytes  # those slots' bytes as read
    first_cluster: int
    size: int
    contiguous: bool = False  # exFAT NoFatChain: the clusters follow one another and the FAT is not used
    valid_size: int | None = None  # exFAT ValidDataLength when less than the size: the rest reads as zeros
    ambiguous: bool = False  # a name on its path collides with a sibling's (without case, or by its 8.3 name)


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
class Rec:
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
class Where:
    prefix: str  # the folder's shown path with a trailing "/", "" for the root
    parts: tuple[bytes, ...] = ()
    encodings: tuple[str, ...] = ()
    altered: frozenset[str] = frozenset()
    exact: bool = True
    ambiguous: bool = False
    depth: int = 0


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

    def _next(self, cluster: int) -> int | None:
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
            after = self._next(cluster)
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
                if len(runs) >= MAX_RUNS:
                    raise CardDamage(_("its clusters lie in more than {n} pieces").format(n=MAX_RUNS))
                start, length = after, 1
            cluster = after
        runs.append((start, length))
        if exact_end and self._next(cluster) is not None:
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

    def lenient_runs(self, handle: CardHandle) -> list[tuple[int, int]]:
        """A file's runs as far as its chain can be followed (up to its first fault), for clearing's cross-checks."""
        try:
            return self.runs(handle)
        except CardDamage:
            pass
        count = min(math.ceil(handle.size / self.cluster_size), self.cluster_count)
        runs: list[tuple[int, int]] = []
        cluster: int | None = handle.first_cluster
        for _step in range(count):  # bounded: a loop only repeats clusters already in the runs
            if cluster is None or not 2 <= cluster <= self.max_cluster:
                break
            if runs and cluster == runs[-1][0] + runs[-1][1]:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((cluster, 1))
            try:
                cluster = self._next(cluster)
            except CardDamage:
                break
        return runs

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
                cluster = self._next(cluster)
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

    def _folder_slots(self, clusters: list[int]) -> Slots:
        starts = [self._cluster_offset(c) for c in clusters]
        return Slots(self.region, starts, self.cluster_size, len(clusters) * self.cluster_size // SLOT)

    # -- reading a file --------------------------------------------------------------------------------

    def open(self, handle: CardHandle, runs: list[tuple[int, int]]) -> BinaryIO:
        """A file's bytes through ``runs``, its checked runlist (from :meth:`runs`)."""
        if handle.size == 0:
            return io.BytesIO(b"")
        data = Region(self.fd, self.offset + self.data_offset, self.size - self.data_offset)
        runlist = [(start - 2, length) for start, length in runs]
        stream: BinaryIO = RunlistStream(data, runlist, handle.size, self.cluster_size)  # type: ignore[arg-type, assignment]
        if handle.valid_size is not None:
            return ValidPrefix(stream, handle.valid_size, handle.size)  # type: ignore[return-value]
        return stream

    # -- the walk --------------------------------------------------------------------------------------

    def _root(self, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        raise NotImplementedError

    def _subfolder(self, rec: Rec, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        raise NotImplementedError

    def walk(self, should_stop: Callable[[], bool] | None = None) -> Iterator[Listed]:
        """Everything on the card, folder by folder in name order; returns early once ``should_stop()``.

        Memory is bounded: a folder yields at most :data:`MAX_FOLDER_ENTRIES`
        entries, and a folder whose entries would make more than
        :data:`MAX_WAITING` wait at once (deep trees of full folders) is named
        as not read instead.
        """
        stop = should_stop or (lambda: False)
        self.folder_clusters = set()

        def descend(item: Listed | tuple[Rec, Where]) -> tuple[tuple[Rec, Where], int] | None:
            return None if isinstance(item, Listed) else (item, item[1].depth)

        def expand(folder: tuple[Rec, Where]) -> tuple[Iterator[Listed | tuple[Rec, Where]], int]:
            rec, where = folder
            records, problem = self._subfolder(rec, stop)
            return self._children(records, problem, where), len(records)

        try:
            records, problem = self._root(stop)
            yield from bounded_walk(
                self._children(records, problem, Where("")),
                len(records),
                descend=descend,
                expand=expand,
                error=lambda folder, reason: self._error(folder[1], reason),
                stop=stop,
            )
        except Stopped:
            return

    def _error(self, where: Where, reason: str) -> Listed:
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

    def _children(self, records: list[Rec], problem: str | None, where: Where) -> Iterator[Listed | tuple[Rec, Where]]:
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
            child = Where(
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
