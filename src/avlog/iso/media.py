"""Recordable media and their exact user capacity, in 2048-byte sectors.

The sector counts are the recordable capacity that drives report for blank write-once media (the figures
``cdrecord -atip``/``dvd+rw-mediainfo`` show for standard discs). A name that covers two formats (``dvd``:
DVD+R and DVD-R) takes the smaller one, so an image planned for it fits either.
"""

from __future__ import annotations

from dataclasses import dataclass

from avlog.i18n import N_

SECTOR = 2048


@dataclass(frozen=True)
class Medium:
    name: str
    sectors: int
    label: str  # what is printed on the box, for messages

    @property
    def bytes(self) -> int:
        return self.sectors * SECTOR


#: The media ``--media`` accepts, smallest first. Archival-grade write-once discs are meant (docs/archivist.md).
MEDIA: dict[str, Medium] = {
    m.name: m
    for m in (
        Medium("cd", 359_849, N_("CD-R 700 MB")),
        Medium("dvd", 2_295_104, N_("DVD+R or DVD-R 4.7 GB")),
        Medium("dvd-dl", 4_171_712, N_("DVD+R DL or DVD-R DL 8.5 GB")),
        Medium("bd25", 12_219_392, N_("BD-R 25 GB")),
        Medium("bd50", 24_438_784, N_("BD-R DL 50 GB")),
        Medium("bd100", 48_878_592, N_("BDXL 100 GB")),
    )
}

#: Exact sector counts of the formats behind the names above (for reference and tests).
FORMAT_SECTORS: dict[str, int] = {
    "CD-R": 359_849,
    "DVD+R": 2_295_104,
    "DVD-R": 2_298_496,
    "DVD+R DL": 4_173_824,
    "DVD-R DL": 4_171_712,
    "BD-R": 12_219_392,
    "BD-R DL": 24_438_784,
    "BDXL": 48_878_592,
}

MEDIA_NAMES: tuple[str, ...] = tuple(MEDIA)
