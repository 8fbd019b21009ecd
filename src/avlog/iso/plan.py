"""Packing clips onto discs: pure, no I/O, property-tested.

A disc's contents must fit its medium *including the filesystem's own structures*. :func:`disc_sectors`
computes an upper bound of the sectors an image with given files takes, from the structures the builder
writes (ISO 9660 level 3 with Rock Ridge, Joliet, UDF): the system area and volume descriptors, the UDF
anchor, descriptor sequences and file set, every directory's records in each of the three trees, each
file's UDF file entry, and the data itself rounded up to whole sectors. ``tests/test_iso_plan.py`` checks
the bound against the exact size of images pycdlib lays out, and that it is close.

Packing keeps a *group* together where it fits on one disc: the clips of a case, or else the flagged
clips of one recorder on one day (an incident). Groups are placed largest first on the first disc with
room (first fit decreasing); a group larger than a whole disc is packed tightly onto discs of its own
(first fit decreasing within the group), except that the clips of its least full disc, when that is less
than half full, are packed with the loose ones. A clip larger than the medium is refused, naming a medium it fits on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from avlog.iso.media import MEDIA, SECTOR, Medium

#: Sectors before the first directory: 16 system sectors, PVD, Joliet SVD, terminator, the UDF volume
#: recognition sequence, padding to the UDF anchor at sector 256, the anchor, the main and reserve volume
#: descriptor sequences, the logical volume integrity sequence, the file set descriptor, the trailing
#: anchor, and the eight path table copies' first sectors (ISO and Joliet, L and M, two each).
FIXED_SECTORS = 320

#: An ISO 9660 data extent holds at most this many bytes (a sector multiple under 4 GiB); a larger file
#: is recorded as several extents, each with its own directory record (level 3 multi-extent).
MAX_EXTENT = 0xFFFFF800

#: Upper bounds of one directory record in each tree, in bytes.
ISO_RECORD = 255  # 33 + name + Rock Ridge entries (NM, PX, TF, ...); longer names move into a continuation area
JOLIET_RECORD = 34 + 2 * 64  # Joliet names are at most 64 UCS-2 characters
UDF_FID = 40 + 2 * 255  # a File Identifier Descriptor with a 255-byte name (Unicode), padded to 4
PATH_TABLE_ENTRY = 8 + 128 + 1  # one path table entry, Joliet name at most 64 UCS-2 characters, padded
PATH_TABLES = 8  # L and M tables, each with an optional copy, for ISO 9660 and for Joliet


def _ceil(n: int, d: int) -> int:
    return -(-n // d)


def extents_of(size: int) -> int:
    """Directory records a file of ``size`` bytes needs in an ISO 9660 tree."""
    return max(1, _ceil(size, MAX_EXTENT))


def disc_sectors(files: Iterable[tuple[str, int]]) -> int:
    """Upper bound of the sectors of an image holding ``files`` (``(path, size)``, path from the root)."""
    dirs: dict[PurePosixPath, list[int]] = {PurePosixPath("."): []}  # directory -> record counts of its entries
    data = 0
    file_count = 0
    for path, size in files:
        p = PurePosixPath(path)
        data += _ceil(size, SECTOR)
        file_count += 1
        parent = p.parent
        dirs.setdefault(parent, []).append(extents_of(size))
        while parent != PurePosixPath("."):  # every ancestor directory is an entry of its parent
            grand = parent.parent
            if parent not in dirs:
                dirs[parent] = []
                dirs.setdefault(grand, []).append(1)
            parent = grand
    directory_sectors = 0
    for records in dirs.values():
        n = sum(records) + 2  # "." and ".."
        # ISO and Joliet records never straddle a sector boundary; UDF identifiers do (a stream).
        directory_sectors += _ceil(n, SECTOR // ISO_RECORD) + 1  # + one Rock Ridge continuation area
        directory_sectors += _ceil(n, SECTOR // JOLIET_RECORD)
        directory_sectors += 1 + _ceil(n * UDF_FID, SECTOR)  # the directory's file entry and its identifiers
    path_tables = PATH_TABLES * _ceil(len(dirs) * PATH_TABLE_ENTRY, SECTOR)
    return FIXED_SECTORS + path_tables + directory_sectors + file_count + data  # + one UDF file entry per file


@dataclass(frozen=True)
class Item:
    """One file to place: a clip (``clip_id``) or, with ``clip_id`` None, never produced by callers."""

    clip_id: int
    size: int
    path: str  # on the disc, from its root: data/<device>/<date>/<name>
    group: str  # clips of one group stay together where they fit
    order: str  # recording order within the group
    tag_bytes: int = 0  # what this clip adds to the bag's tag and catalog files (manifest line, catalog entry)


@dataclass(frozen=True)
class PlannedDisc:
    items: tuple[Item, ...]
    sectors: int  # upper bound, tag files included
    capacity: int

    @property
    def payload_bytes(self) -> int:
        return sum(i.size for i in self.items)

    @property
    def free_bytes(self) -> int:
        return (self.capacity - self.sectors) * SECTOR


@dataclass(frozen=True)
class TooBig:
    item: Item
    fits_on: Medium | None  # the smallest medium it fits on, None when on none


@dataclass(frozen=True)
class Plan:
    medium: Medium
    discs: tuple[PlannedDisc, ...]
    too_big: tuple[TooBig, ...] = field(default=())


def _with_tags(items: Sequence[Item], fixed_tag_bytes: int, tag_files: int) -> list[tuple[str, int]]:
    """The files of a disc for the bound: the clips, plus tag files whose total size is bounded by
    ``fixed_tag_bytes`` and each clip's ``tag_bytes``, each tag file rounding up to a whole sector."""
    tags = fixed_tag_bytes + sum(i.tag_bytes for i in items) + tag_files * (SECTOR - 1)
    files = [(i.path, i.size) for i in items]
    files.extend((f"tag{n}", 0) for n in range(tag_files))
    files.append(("tags", tags))
    return files


class _Disc:
    """A disc being filled; its bound is recomputed from scratch on each try (exact, not incremental)."""

    def __init__(self, capacity: int, fixed_tag_bytes: int, tag_files: int):
        self.items: list[Item] = []
        self.capacity = capacity
        self.fixed = fixed_tag_bytes
        self.tag_files = tag_files
        self.sectors = self._bound([])

    def _bound(self, items: Sequence[Item]) -> int:
        return disc_sectors(_with_tags(items, self.fixed, self.tag_files))

    def try_add(self, new: Sequence[Item]) -> bool:
        # Cheap refusal first: the data alone must fit in what is left.
        if sum(_ceil(i.size, SECTOR) for i in new) > self.capacity - self.sectors:
            return False
        sectors = self._bound([*self.items, *new])
        if sectors > self.capacity:
            return False
        self.items.extend(new)
        self.sectors = sectors
        return True

    def done(self) -> PlannedDisc:
        return PlannedDisc(tuple(sorted(self.items, key=lambda i: i.path)), self.sectors, self.capacity)


def fits_alone(item: Item, medium: Medium, fixed_tag_bytes: int, tag_files: int) -> bool:
    return disc_sectors(_with_tags([item], fixed_tag_bytes, tag_files)) <= medium.sectors


def plan(items: Sequence[Item], medium: Medium, *, fixed_tag_bytes: int = 64 * 1024, tag_files: int = 8) -> Plan:
    """Pack ``items`` onto as few discs of ``medium`` as first-fit decreasing of groups gives.

    ``fixed_tag_bytes`` bounds the tag files' size apart from the clips' own ``tag_bytes``; ``tag_files`` is
    how many tag files each disc carries. Every item that fits a medium lands on exactly one disc.
    """
    too_big = []
    placeable = []
    for item in items:
        if fits_alone(item, medium, fixed_tag_bytes, tag_files):
            placeable.append(item)
        else:
            bigger = next(
                (
                    m
                    for m in MEDIA.values()
                    if m.sectors > medium.sectors and fits_alone(item, m, fixed_tag_bytes, tag_files)
                ),
                None,
            )
            too_big.append(TooBig(item, bigger))
    groups: dict[str, list[Item]] = {}
    for item in placeable:
        groups.setdefault(item.group, []).append(item)
    for members in groups.values():
        members.sort(key=lambda i: (i.order, i.path))  # recording order, for a stable plan
    discs: list[_Disc] = []

    def new_disc() -> _Disc:
        discs.append(_Disc(medium.sectors, fixed_tag_bytes, tag_files))
        return discs[-1]

    loose: list[Item] = []
    for name in sorted(groups, key=lambda g: (-sum(i.size for i in groups[g]), g)):
        members = groups[name]
        if any(d.try_add(members) for d in discs):
            continue
        disc = new_disc()
        if disc.try_add(members):
            continue
        # Larger than a disc: fill fresh discs in recording order, so the group spans as few as it can;
        # the tail that does not fill its last disc is packed with the loose items.
        discs.pop()
        spanned: list[_Disc] = []
        for item in sorted(members, key=lambda i: (-i.size, i.path)):
            if not any(d.try_add([item]) for d in spanned):
                spanned.append(new_disc())
                spanned[-1].try_add([item])  # fits: every placeable item fits an empty disc
        emptiest = min(spanned, key=lambda d: d.sectors)
        if emptiest.sectors * 2 < emptiest.capacity:
            # Its least full disc, less than half full: those clips join the loose ones for tight packing.
            discs.remove(emptiest)
            loose.extend(emptiest.items)
    for item in sorted(loose, key=lambda i: (-i.size, i.path)):
        if not any(d.try_add([item]) for d in discs):
            new_disc().try_add([item])
    return Plan(medium, tuple(d.done() for d in discs if d.items), tuple(too_big))
