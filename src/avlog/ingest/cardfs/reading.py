"""Reading a card's bytes and its FAT: pread windows, cached FAT blocks, FAT entry encoding, folder slots."""

from __future__ import annotations

import errno
import io
import math
import os
from collections import OrderedDict
from datetime import datetime, tzinfo
from typing import BinaryIO

from dissect.util.ts import dostimestamp

from avlog.i18n import _

SLOT = 32


class CardDamage(OSError):
    """A structure on the card that cannot be trusted; ``strerror`` says which and why (a whole sentence)."""

    def __init__(self, reason: str):
        super().__init__(errno.EIO, reason)


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


class ValidPrefix(io.RawIOBase):
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


def dos_time(date_time: int, local: tzinfo, centiseconds: int = 0) -> datetime | None:
    if not date_time >> 16:
        return None
    try:
        return dostimestamp(date_time, centiseconds).replace(tzinfo=local)
    except (ValueError, OverflowError):  # a month 13 or a day 0: no time rather than a wrong one
        return None


class Slots:
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
