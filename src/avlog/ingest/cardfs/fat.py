"""FAT12/16/32: the boot sector, the fixed or chained root, 8.3 entries with their long names."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from datetime import tzinfo

from dissect.fat.fat import validate_bpb

from avlog.i18n import _
from avlog.ingest import names
from avlog.ingest.cardfs.base import STOP_EVERY, CardFS, CardHandle, Rec, Stopped
from avlog.ingest.cardfs.reading import SLOT, CardDamage, FatTable, Slots, dos_time

FAT_DIR_MAX_BYTES = 65536 * 32  # FAT: a folder holds at most 65,536 entries


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

    def _root(self, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        if self.bits == 32:
            clusters, problem = self._folder_chain(self.root_cluster, math.ceil(FAT_DIR_MAX_BYTES / self.cluster_size))
            if not clusters:
                raise CardDamage(_("its root folder cannot be read: {reason}").format(reason=problem))
            records = self._records(self._folder_slots(clusters), True, stop)
            return records, None if problem is None else _("the root folder was read only in part: {reason}").format(
                reason=problem
            )
        slots = Slots(self.region, [self.root_offset], self.root_entries * SLOT, self.root_entries)
        return self._records(slots, True, stop), None

    def _subfolder(self, rec: Rec, stop: Callable[[], bool]) -> tuple[list[Rec], str | None]:
        assert rec.handle is not None
        first = rec.handle.first_cluster
        clusters, problem = self._folder_chain(first, math.ceil(FAT_DIR_MAX_BYTES / self.cluster_size))
        if not clusters:
            return [], _("this folder was not read: {reason}").format(reason=problem)
        records = self._records(self._folder_slots(clusters), False, stop)
        if problem is not None:
            problem = _("this folder was read only in part: {reason}").format(reason=problem)
        return records, problem

    def _records(self, slots: Slots, is_root: bool, stop: Callable[[], bool]) -> list[Rec]:
        records: list[Rec] = []
        pending: list[tuple[int, bytes]] = []
        label_seen = False
        for index in range(slots.count):
            if index % STOP_EVERY == 0 and stop():
                raise Stopped
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
            )
            records.append(
                Rec(
                    shown=shown,
                    stored=stored,
                    encoding=encoding,
                    short_key=bytes(raw[:11]).upper(),
                    handle=handle,
                    size=handle.size,
                    mtime=dos_time(
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
        units = names.utf16_until_nul(b"".join(raw[1:11] + raw[14:26] + raw[28:32] for _o, raw in reversed(pending)))
        if not units or len(units) > 255 * 2:
            return None, [], {names.LFN_DAMAGED}
        return units, pending, set()
