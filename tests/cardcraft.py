"""Crafting hostile cards: real images made by mkfs.vfat / mkfs.exfat and filled by mtools or exfat-fuse,
then byte-patched, with a raw parser of the tests' own (independent of avlog's reader) to find what to
patch and to see every directory slot before and after a clearing.

The parser here is deliberately plain: it follows chains with a bound and a visited set so that it
survives the very cards it damages, and it does not decide anything avlog decides (names are bytes).
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import exfat_mounted, require_tool

MTOOLS_ENV = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}
FAT_SIZES_KB = {12: 4096, 16: 20480, 32: 40960}  # FAT12: 2036 clusters of 2 KiB; FAT16: 10211; FAT32: 80628 of 512 B
KINDS = ("fat12", "fat16", "fat32", "exfat")

_work = tempfile.TemporaryDirectory(prefix="cardcraft-")


@functools.cache
def clip(n: int) -> bytes:
    """A real, short MPEG-4 clip, different for each ``n`` (made once per test session)."""
    from avlog.samples import write_video

    path = Path(_work.name) / f"clip{n}.mp4"
    start = datetime.now(UTC) - timedelta(hours=2) + timedelta(seconds=5 * n)
    write_video(path, start=start, seconds=0.6 + 0.2 * (n % 4), width=128, height=96, noise=True)
    return path.read_bytes()


def make_fat(bits: int, image: Path, files: dict[str, bytes], *, size_kb: int | None = None) -> Path:
    """A real FAT12/16/32 image (mkfs.vfat) holding ``files`` (card path → bytes), copied in with mtools."""
    require_tool("mkfs.vfat")
    require_tool("mcopy")
    size = size_kb or FAT_SIZES_KB[bits]
    sectors = ["-s", "1"] if bits == 32 else []
    subprocess.run(
        ["mkfs.vfat", "-F", str(bits), *sectors, "-n", "CAMERA", "-C", str(image), str(size)],
        check=True,
        capture_output=True,
    )
    folders = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
    for folder in folders:
        subprocess.run(["mmd", "-i", str(image), f"::/{folder}"], check=True, capture_output=True, env=MTOOLS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        for n, (path, data) in enumerate(files.items()):
            local = Path(tmp) / f"f{n}"
            local.write_bytes(data)
            subprocess.run(
                ["mcopy", "-i", str(image), str(local), f"::/{path}"], check=True, capture_output=True, env=MTOOLS_ENV
            )
    return image


def make_exfat(image: Path, files: dict[str, bytes], *, size_mb: int = 16) -> Path:
    """A real exFAT image (mkfs.exfat, 4 KiB clusters) filled through exfat-fuse on a loop device (root)."""
    require_tool("mkfs.exfat")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.exfat", "-c", "4K", "-L", "CAMERA", str(image)], check=True, capture_output=True)
    with exfat_mounted(image) as mnt:
        for path, data in files.items():
            target = mnt / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return image


def make_card(kind: str, image: Path, files: dict[str, bytes]) -> Path:
    if kind == "exfat":
        return make_exfat(image, files)
    return make_fat(int(kind[3:]), image, files)


def changed_offsets(before: bytes, after: bytes) -> list[int]:
    """Every byte offset where two images differ."""
    assert len(before) == len(after)
    out = []
    step = 1 << 16
    for start in range(0, len(before), step):
        if before[start : start + step] != after[start : start + step]:
            out.extend(i for i in range(start, min(start + step, len(before))) if before[i] != after[i])
    return out


def mtools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=MTOOLS_ENV, timeout=60)


def fsck_fat(image: Path) -> subprocess.CompletedProcess[str]:
    """``fsck.vfat -n``: a read-only check by dosfstools (exit 0 when the filesystem is consistent)."""
    return subprocess.run(
        [require_tool("fsck.vfat"), "-n", "-v", str(image)], capture_output=True, text=True, timeout=60
    )


# -- FAT12/16/32, parsed here ------------------------------------------------------------------------


@dataclass
class FatEntry:
    """A live directory entry: its short slot, the long-name slots before it, and its fields."""

    offset: int  # image offset of the short entry's slot
    lfn: list[int]  # image offsets of the long-name slots before it
    raw: bytes  # the short slot's 32 bytes
    long_name: str | None
    folder: tuple[str, ...] = ()  # names of the folders above it

    @property
    def short(self) -> bytes:
        return self.raw[:11]

    @property
    def attr(self) -> int:
        return self.raw[11]

    @property
    def size(self) -> int:
        return int.from_bytes(self.raw[28:32], "little")

    @property
    def name(self) -> str:
        if self.long_name is not None:
            return self.long_name
        base, ext = self.short[:8].rstrip(b" "), self.short[8:].rstrip(b" ")
        return (base + (b"." + ext if ext else b"")).decode("latin-1")

    @property
    def slots(self) -> list[int]:
        return [*self.lfn, self.offset]


class Fat:
    """A FAT image in memory: patch it, then :meth:`save`."""

    def __init__(self, path: Path):
        self.path = path
        self.buf = bytearray(path.read_bytes())
        boot = self.buf[:512]
        self.bps, self.spc, self.reserved, self.fats, self.root_entries, total16, _m, fat16 = struct.unpack_from(
            "<HBHBHHBH", boot, 11
        )
        (total32,) = struct.unpack_from("<I", boot, 32)
        fat32, _flags, _ver, self.root_cluster, self.fsinfo = struct.unpack_from("<IHHIH", boot, 36)
        self.fat_sectors = fat16 or fat32
        total = total16 or total32
        root_sectors = math.ceil(self.root_entries * 32 / self.bps)
        first_data = self.reserved + self.fats * self.fat_sectors + root_sectors
        self.clusters = (total - first_data) // self.spc
        self.bits = 12 if self.clusters < 4085 else 16 if self.clusters < 65525 else 32
        self.cluster_size = self.bps * self.spc
        self.data = first_data * self.bps
        self.root = (self.reserved + self.fats * self.fat_sectors) * self.bps
        self.eoc = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[self.bits]
        self.bad = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[self.bits]

    def save(self) -> None:
        self.path.write_bytes(self.buf)

    # FAT entries
    def fat_offset(self, copy: int) -> int:
        return (self.reserved + copy * self.fat_sectors) * self.bps

    def fat_get(self, cluster: int, copy: int = 0) -> int:
        base = self.fat_offset(copy)
        if self.bits == 12:
            value = int.from_bytes(self.buf[base + cluster * 3 // 2 : base + cluster * 3 // 2 + 2], "little")
            return value >> 4 if cluster & 1 else value & 0xFFF
        width = self.bits // 8
        value = int.from_bytes(self.buf[base + cluster * width : base + cluster * width + width], "little")
        return value & 0x0FFFFFFF if self.bits == 32 else value

    def fat_set(self, cluster: int, value: int) -> None:
        """Set a cluster's entry in every FAT copy."""
        for copy in range(self.fats):
            base = self.fat_offset(copy)
            if self.bits == 12:
                at = base + cluster * 3 // 2
                old = int.from_bytes(self.buf[at : at + 2], "little")
                new = (old & 0x000F) | (value << 4) if cluster & 1 else (old & 0xF000) | value
                self.buf[at : at + 2] = new.to_bytes(2, "little")
            else:
                width = self.bits // 8
                self.buf[base + cluster * width : base + cluster * width + width] = value.to_bytes(width, "little")

    def fat_span(self, cluster: int, copy: int) -> range:
        """The image bytes a cluster's entry occupies in one FAT copy."""
        base = self.fat_offset(copy)
        if self.bits == 12:
            return range(base + cluster * 3 // 2, base + cluster * 3 // 2 + 2)
        width = self.bits // 8
        return range(base + cluster * width, base + cluster * width + width)

    def chain(self, first: int, limit: int | None = None) -> list[int]:
        """A chain as the FAT says, stopped at its end, a repeat, a value off the volume, or ``limit``."""
        out: list[int] = []
        seen: set[int] = set()
        cluster = first
        limit = limit or self.clusters
        while 2 <= cluster <= self.clusters + 1 and cluster not in seen and len(out) < limit:
            out.append(cluster)
            seen.add(cluster)
            cluster = self.fat_get(cluster)
        return out

    def cluster_offset(self, cluster: int) -> int:
        return self.data + (cluster - 2) * self.cluster_size

    # folders
    def folder_slots(self, first: int | None) -> list[int]:
        """Image offsets of every 32-byte slot of a folder (None: the root)."""
        if first is None and self.bits != 32:
            return [self.root + 32 * i for i in range(self.root_entries)]
        clusters = self.chain(self.root_cluster if first is None else first, 4096)
        return [self.cluster_offset(c) + 32 * i for c in clusters for i in range(self.cluster_size // 32)]

    def entries(self, first: int | None = None, folder: tuple[str, ...] = ()) -> list[FatEntry]:
        """The live entries of a folder (not its "." and ".."), long names joined without any checks."""
        out: list[FatEntry] = []
        lfn: list[int] = []
        for offset in self.folder_slots(first):
            raw = bytes(self.buf[offset : offset + 32])
            if raw[0] in (0, 0xE5):
                lfn = []
                continue
            if raw[11] & 0x3F == 0x0F:
                lfn = [offset] if raw[0] & 0x40 else [*lfn, offset]
                continue
            if raw[:11] in (b".          ", b"..         ") and first is not None and not lfn:
                continue
            name = None
            if lfn:
                units = b"".join(
                    self.buf[o + 1 : o + 11] + self.buf[o + 14 : o + 26] + self.buf[o + 28 : o + 32]
                    for o in reversed(lfn)
                )
                cut = next((i for i in range(0, len(units), 2) if units[i : i + 2] == b"\0\0"), len(units))
                name = units[:cut].decode("utf-16-le", "surrogatepass")
            out.append(FatEntry(offset, lfn, raw, name, folder))
            lfn = []
        return out

    def cluster_of(self, entry: FatEntry) -> int:
        lo = int.from_bytes(entry.raw[26:28], "little")
        hi = int.from_bytes(entry.raw[20:22], "little") if self.bits == 32 else 0
        return lo | hi << 16

    def walk(self) -> Iterator[FatEntry]:
        """Every live entry of every folder reachable without repeating a folder (depth-first)."""
        seen: set[int] = set()
        stack: list[tuple[int | None, tuple[str, ...]]] = [(None, ())]
        while stack:
            first, folder = stack.pop()
            for entry in self.entries(first, folder):
                yield entry
                cluster = self.cluster_of(entry)
                folder_entry = entry.attr & 0x10 and not entry.attr & 0x08
                if folder_entry and cluster not in seen and len(seen) < 10_000 and 2 <= cluster <= self.clusters + 1:
                    seen.add(cluster)
                    stack.append((cluster, (*folder, entry.name)))

    def find(self, path: str) -> FatEntry:
        """An entry by its path of long or 8.3 names, case-insensitively (the first that matches)."""
        first: int | None = None
        folder: tuple[str, ...] = ()
        parts = path.split("/")
        for n, part in enumerate(parts):
            match = next(e for e in self.entries(first, folder) if e.name.upper() == part.upper())
            if n == len(parts) - 1:
                return match
            first, folder = self.cluster_of(match), (*folder, match.name)
        raise AssertionError(path)

    def content(self, entry: FatEntry) -> bytes:
        clusters = self.chain(self.cluster_of(entry), math.ceil(entry.size / self.cluster_size))
        data = b"".join(
            bytes(self.buf[self.cluster_offset(c) : self.cluster_offset(c) + self.cluster_size]) for c in clusters
        )
        return data[: entry.size]

    def every_slot(self) -> dict[int, bytes]:
        """Every slot of every reachable folder, live or not: what a clearing may change, and how."""
        out = {}
        seen: set[int] = set()
        stack: list[int | None] = [None]
        while stack:
            first = stack.pop()
            for offset in self.folder_slots(first):
                out[offset] = bytes(self.buf[offset : offset + 32])
            for entry in self.entries(first):
                cluster = self.cluster_of(entry)
                if entry.attr & 0x10 and 2 <= cluster <= self.clusters + 1 and cluster not in seen:
                    seen.add(cluster)
                    stack.append(cluster)
        return out

    # patches
    def put(self, offset: int, data: bytes) -> None:
        self.buf[offset : offset + len(data)] = data

    def set_short(self, entry: FatEntry, name11: bytes, *, fix_lfn: bool = True) -> None:
        """Give an entry a new 8.3 name; its long-name parts get the new checksum unless told not to."""
        assert len(name11) == 11
        self.put(entry.offset, name11)
        if fix_lfn:
            checksum = lfn_checksum(name11)
            for o in entry.lfn:
                self.buf[o + 13] = checksum

    def set_long(self, entry: FatEntry, units: bytes) -> None:
        """Rewrite an entry's long name in its existing slots (at most 13 units per slot, NUL-padded)."""
        room = 13 * len(entry.lfn)
        assert len(units) % 2 == 0 and len(units) // 2 <= room, "the new name must fit the old slots"
        padded = units + (b"\0\0" if len(units) // 2 < room else b"")
        padded += b"\xff\xff" * (room - len(padded) // 2)
        for n, o in enumerate(reversed(entry.lfn)):
            part = padded[26 * n : 26 * (n + 1)]
            self.put(o + 1, part[:10])
            self.put(o + 14, part[10:22])
            self.put(o + 28, part[22:26])

    def set_field(self, entry: FatEntry, at: int, value: int, width: int) -> None:
        self.put(entry.offset + at, value.to_bytes(width, "little"))

    def set_cluster(self, entry: FatEntry, cluster: int) -> None:
        self.set_field(entry, 26, cluster & 0xFFFF, 2)
        if self.bits == 32:
            self.set_field(entry, 20, cluster >> 16, 2)


def lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short[:11]:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


# -- exFAT, parsed here ------------------------------------------------------------------------------


@dataclass
class ExfatSet:
    offsets: list[int]  # image offsets of the set's slots: file, stream, names, ...
    name: str
    attributes: int
    first: int
    size: int
    flags: int
    folder: tuple[str, ...] = field(default=())


class Exfat:
    def __init__(self, path: Path):
        self.path = path
        self.buf = bytearray(path.read_bytes())
        boot = self.buf[:512]
        (_vol, self.fat_at, _fat_len, heap, self.clusters, self.root_cluster) = struct.unpack_from("<QIIIII", boot, 72)
        self.bps = 1 << boot[108]
        self.cluster_size = self.bps << boot[109]
        self.fat_at *= self.bps
        self.data = heap * self.bps

    def save(self) -> None:
        self.path.write_bytes(self.buf)

    def fat_get(self, cluster: int) -> int:
        return int.from_bytes(self.buf[self.fat_at + 4 * cluster : self.fat_at + 4 * cluster + 4], "little")

    def fat_set(self, cluster: int, value: int) -> None:
        self.buf[self.fat_at + 4 * cluster : self.fat_at + 4 * cluster + 4] = value.to_bytes(4, "little")

    def cluster_offset(self, cluster: int) -> int:
        return self.data + (cluster - 2) * self.cluster_size

    def chain(self, first: int, limit: int = 4096) -> list[int]:
        out: list[int] = []
        cluster = first
        while 2 <= cluster <= self.clusters + 1 and cluster not in out and len(out) < limit:
            out.append(cluster)
            cluster = self.fat_get(cluster)
        return out

    def folder_slots(self, folder: ExfatSet | None) -> list[int]:
        if folder is None:
            clusters = self.chain(self.root_cluster)
            count = len(clusters) * self.cluster_size // 32
        else:
            n = math.ceil(folder.size / self.cluster_size)
            clusters = list(range(folder.first, folder.first + n)) if folder.flags & 2 else self.chain(folder.first, n)
            count = folder.size // 32
        slots = [self.cluster_offset(c) + 32 * i for c in clusters for i in range(self.cluster_size // 32)]
        return slots[:count]

    def sets(self, folder: ExfatSet | None = None) -> list[ExfatSet]:
        slots = self.folder_slots(folder)
        out = []
        i = 0
        while i < len(slots):
            raw = self.buf[slots[i] : slots[i] + 32]
            if raw[0] == 0:
                break
            if raw[0] != 0x85:
                i += 1
                continue
            count = raw[1]
            offsets = slots[i : i + 1 + count]
            stream = self.buf[offsets[1] : offsets[1] + 32]
            length = stream[3]
            units = b"".join(bytes(self.buf[o + 2 : o + 32]) for o in offsets[2:])[: 2 * length]
            out.append(
                ExfatSet(
                    offsets,
                    units.decode("utf-16-le", "surrogatepass"),
                    int.from_bytes(raw[4:6], "little"),
                    int.from_bytes(stream[20:24], "little"),
                    int.from_bytes(stream[24:32], "little"),
                    stream[1],
                    folder=(*folder.folder, folder.name) if folder else (),
                )
            )
            i += 1 + count
        return out

    def find(self, path: str) -> ExfatSet:
        folder = None
        parts = path.split("/")
        for n, part in enumerate(parts):
            match = next(s for s in self.sets(folder) if s.name.upper() == part.upper())
            if n == len(parts) - 1:
                return match
            folder = match
        raise AssertionError(path)

    def put(self, offset: int, data: bytes) -> None:
        self.buf[offset : offset + len(data)] = data

    def fix_checksum(self, entry: ExfatSet) -> None:
        whole = b"".join(bytes(self.buf[o : o + 32]) for o in entry.offsets)
        total = 0
        for i, byte in enumerate(whole):
            if i in (2, 3):
                continue
            total = ((0x8000 if total & 1 else 0) + (total >> 1) + byte) & 0xFFFF
        self.put(entry.offsets[0] + 2, total.to_bytes(2, "little"))

    def set_stream(
        self,
        entry: ExfatSet,
        *,
        first: int | None = None,
        size: int | None = None,
        valid: int | None = None,
        flags: int | None = None,
    ) -> None:
        """Rewrite fields of a set's stream extension and fix the set's checksum."""
        stream = entry.offsets[1]
        if flags is not None:
            self.buf[stream + 1] = flags
            entry.flags = flags
        if valid is not None:
            self.put(stream + 8, valid.to_bytes(8, "little"))
        if first is not None:
            self.put(stream + 20, first.to_bytes(4, "little"))
            entry.first = first
        if size is not None:
            self.put(stream + 24, size.to_bytes(8, "little"))
            entry.size = size
        self.fix_checksum(entry)

    def use_fat_chain(self, entry: ExfatSet) -> list[int]:
        """Turn a contiguous (NoFatChain) file or folder into one whose clusters are chained in the FAT."""
        n = max(1, math.ceil(entry.size / self.cluster_size))
        clusters = list(range(entry.first, entry.first + n))
        for a, b in zip(clusters, clusters[1:], strict=False):
            self.fat_set(a, b)
        self.fat_set(clusters[-1], 0xFFFFFFFF)
        self.set_stream(entry, flags=entry.flags & ~0x02)
        return clusters

    def set_name(self, entry: ExfatSet, units: bytes) -> None:
        """Rewrite a set's name in its existing name slots (15 units each) and fix its checksum."""
        room = 15 * (len(entry.offsets) - 2)
        assert len(units) % 2 == 0 and len(units) // 2 <= room
        padded = units.ljust(room * 2, b"\0")
        for n, o in enumerate(entry.offsets[2:]):
            self.put(o + 2, padded[30 * n : 30 * (n + 1)])
        self.buf[entry.offsets[1] + 3] = len(units) // 2
        self.fix_checksum(entry)


def copy_image(image: Path, target: Path) -> Path:
    shutil.copyfile(image, target)
    return target
