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

import os
from datetime import tzinfo

from avlog.ingest.cardfs.base import MAX_DEPTH, MAX_FOLDER_ENTRIES, MAX_WAITING, CardFS, CardHandle, Listed
from avlog.ingest.cardfs.exfat import ExfatFS
from avlog.ingest.cardfs.fat import FatFS
from avlog.ingest.cardfs.reading import CardDamage, encode_entry, entry_span

__all__ = [
    "MAX_DEPTH",
    "MAX_FOLDER_ENTRIES",
    "MAX_WAITING",
    "CardDamage",
    "CardFS",
    "CardHandle",
    "ExfatFS",
    "FatFS",
    "Listed",
    "encode_entry",
    "entry_span",
    "open_card_fs",
]


def open_card_fs(fd: int, offset: int, size: int, local_tz: tzinfo) -> CardFS:
    """The filesystem at ``offset`` of an open card: :class:`ExfatFS` or :class:`FatFS`."""
    head = os.pread(fd, 11, offset)
    if head[3:11] == b"EXFAT   ":
        return ExfatFS(fd, offset, size, local_tz)
    return FatFS(fd, offset, size, local_tz)
