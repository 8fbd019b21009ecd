"""exFAT: the boot sector, entry sets checked by their checksum, contiguous (NoFatChain) or chained data."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo

from avlog.i18n import _
from avlog.ingest import names
from avlog.ingest.cardfs.base import MAX_FOLDER_ENTRIES, STOP_EVERY, CardFS, CardHandle, Rec, Stopped
from avlog.ingest.cardfs.reading import SLOT, CardDamage, FatTable, Slots, dos_time

EXFAT_DIR_MAX_BYTES = 256 << 20  # exFAT: a folder is at most 256 MiB


def exfat_time(timestamp: int, centiseconds: int, tz_byte: int, local: tzinfo) -> datetime | None:
    moment = dos_time(timestamp, local, min(centiseconds, 199))
    if moment is None or not tz_byte & 0x80:
        return moment
    quarter_hours = tz_byte & 0x7F  # the offset field is valid: 7-bit signed count of 15 minutes
    if quarter_hours & 0x40:
        quarter_hours -= 0x80
    return moment.replace(tzinfo=timezone(timedelta(minutes=15 * quarter_hours)))


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

    def _root(self, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        clusters, problem = self._folder_chain(self.root_cluster, math.ceil(EXFAT_DIR_MAX_BYTES / self.cluster_size))
        if not clusters:
            raise CardDamage(_("its root folder cannot be read: {reason}").format(reason=problem))
        records, too_many = self._records(self._folder_slots(clusters), stop)
        problem = problem or too_many
        if problem is None:
            return records, None
        return records, _("the root folder was read only in part: {reason}").format(reason=problem)

    def _subfolder(self, rec: Rec, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
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
        records, too_many = self._records(slots, stop)
        if too_many is not None:
            return records, _("this folder was read only in part: {reason}").format(reason=too_many)
        return records, None

    def _records(self, slots: Slots, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        records: list[Rec] = []
        index = 0
        for step in range(slots.count):
            if index >= slots.count:
                break
            if step % STOP_EVERY == 0 and stop():
                raise Stopped
            if len(records) >= MAX_FOLDER_ENTRIES:
                return records, _("it holds more than {n} entries; the rest were not read").format(n=MAX_FOLDER_ENTRIES)
            offset, raw = slots.get(index)
            kind = raw[0]
            if kind == 0x00:
                break  # the end of the folder: every entry after it is unused (exFAT specification, Linux)
            if kind != 0x85:  # bitmap, up-case table, label, GUID, padding, deleted or stray entries: structure
                index += 1
                continue
            rec, used = self._entry_set(slots, index)
            records.append(rec)
            index += used
        return records, None

    def _entry_set(self, slots: Slots, index: int) -> tuple[Rec, int]:
        """One file or folder from its entry set; a damaged set fails alone and the walk goes on after its primary."""
        offset, primary = slots.get(index)
        count = primary[1]
        available = slots.count - index - 1
        got = [slots.get(index + 1 + i) for i in range(min(count, available))]
        parts = [(offset, primary), *got]

        def damaged(reason: str) -> tuple[Rec, int]:
            name = _set_name(parts)
            error = _("its directory entries at byte {offset} of the card are damaged: {reason}").format(
                offset=self.offset + offset, reason=reason
            )
            shown = names.show_utf16(name) if name else None
            return Rec(shown, name or b"", "utf-16le", None, None, error=error), 1

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
        if size > self.cluster_count * self.cluster_size:  # exFAT sizes are 64-bit: never let one go further
            error = _("its size ({size} bytes) is more than the whole card holds").format(size=size)
            return Rec(names.show_utf16(name), name, "utf-16le", None, None, error=error), 1 + count
        if valid > size:
            return damaged(_("its valid length is more than its size"))
        if size and not flags & 0x01:
            return damaged(_("it lists data but no allocation"))
        handle = CardHandle(
            slots=tuple(o for o, _r in parts),
            raw=whole,
            first_cluster=first,
            size=size,
            contiguous=bool(flags & 0x02),
            valid_size=valid if valid < size and not is_dir else None,
        )
        mtime = exfat_time(int.from_bytes(primary[12:16], "little"), primary[21], primary[23], self.local_tz)
        rec = Rec(
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
    return names.utf16_until_nul(b"".join(raw[2:32] for _o, raw in parts[2:] if raw[0] == 0xC1))
