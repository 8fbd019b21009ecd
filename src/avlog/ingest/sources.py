"""Where recordings come from: a folder, or a raw FAT12/16/32/exFAT card image or block device.

A card is never mounted and never written here: images and devices are opened
read-only and walked by :mod:`avlog.ingest.cardfs`. Every source yields
:class:`SourceEntry` items with a shown, validated path relative to the card's
root (:mod:`avlog.ingest.names`), the stored name bytes when the shown path is
not their exact decoding, and, in its handle, what identifies the very file
that was listed (clearing deletes by that, never by a path rebuilt from names).
Nothing listed is dropped uncounted: a file not to be read carries ``special``
or ``skip``, a folder that cannot be read an ``error``.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dissect.fat.exceptions import Error as DissectError

from avlog.errors import SourceError
from avlog.i18n import _
from avlog.ingest import names
from avlog.ingest.cardfs import (
    MAX_FOLDER_ENTRIES,
    CardDamage,
    CardFS,
    CardHandle,
    Listed,
    open_card_fs,
)
from avlog.ingest.cardfs.base import FolderNotRead, bounded_walk

SECTOR = 512
# MBR partition types that may hold FAT12/16/32 or exFAT.
_FAT_PARTITION_TYPES = {0x01, 0x04, 0x06, 0x07, 0x0B, 0x0C, 0x0E}


@dataclass(frozen=True)
class SourceEntry:
    path: str  # the shown path: relative to the card root, "/"-separated, each component safe (avlog.ingest.names)
    size: int
    mtime: datetime | None  # aware
    handle: Any = None  # the source's own reference to the file: where it is and what it was when listed
    special: bool = False  # a link, device or socket: listed so it is counted, never read
    error: str | None = None  # set when the entry cannot be read at all (an unreadable folder, a damaged entry)
    # The stored bytes of each path component, when the shown path is not their exact decoding
    # ({"encoding": "utf-16le" | "fat-8.3" | "posix", "parts": [hex, ...]}); None for ordinary names.
    original_name: dict[str, Any] | None = None
    name_note: str | None = None  # what was altered to show the name (a translated sentence), or None
    skip: str | None = None  # listed but never read, for this reason (counted in the report): "volume_label"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


StopFlag = Callable[[], bool] | None


class Source(Protocol):
    kind: str  # folder | fat | exfat
    location: str
    parallel_reads: bool  # whether two files may be read at once

    def entries(self, should_stop: StopFlag = None) -> Iterator[SourceEntry]:
        """Every file on the card, and what could not be listed; returns early once ``should_stop()``."""
        ...

    def open(self, entry: SourceEntry) -> BinaryIO: ...

    def recheck(self, entry: SourceEntry) -> str | None:
        """After a copy: a reason when the file changed while it was read, else None."""
        ...

    def close(self) -> None: ...


def _named(parts: list[bytes], encodings: list[str], altered: set[str], exact: bool) -> dict[str, Any]:
    """The naming fields of a SourceEntry: the stored bytes when the path is not shown exactly, and the note."""
    return {
        "original_name": None if exact else names.original_name(encodings, parts),
        "name_note": names.note(altered),
    }


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A file of a mounted card as it was listed: its stored name bytes and who it was (clearing deletes by this)."""

    parts: tuple[bytes, ...]  # the path's components, as the kernel gives them
    folders: tuple[tuple[int, int], ...]  # (st_dev, st_ino) of the card's root and of each folder on the way
    dev: int
    ino: int
    size: int
    mtime_ns: int

    def matches(self, st: os.stat_result) -> bool:
        """Whether ``st`` is this very file, unchanged: a regular file of the same inode, size and time."""
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
            self.dev,
            self.ino,
            self.size,
            self.mtime_ns,
        )


@dataclass(frozen=True, slots=True)
class _Folder:
    path: bytes
    shown: str  # "" for the root, else the shown path with a trailing "/"
    parts: tuple[bytes, ...]
    folders: tuple[tuple[int, int], ...]
    altered: frozenset[str]
    exact: bool
    depth: int


class FolderSource:
    """A folder: a mounted card, a copy of one, or any directory of recordings. Links are not followed.

    Names are taken as bytes, as the kernel gives them, and shown through
    :mod:`avlog.ingest.names`; files are opened by those bytes, never by the shown path.
    """

    kind = "folder"
    parallel_reads = True

    def __init__(self, root: Path):
        self.root = root
        self.location = names.show_path(root)  # for messages and records; the card's label may not be text
        if not root.is_dir():
            raise SourceError(_("{path} is not a folder").format(path=self.location))
        self._root = os.fsencode(root)

    def entries(self, should_stop: StopFlag = None) -> Iterator[SourceEntry]:
        stop = should_stop or (lambda: False)
        try:
            st = os.stat(self._root)
            top = _Folder(self._root, "", (), ((st.st_dev, st.st_ino),), frozenset(), True, 0)
            listing = self._list(top)
        except OSError as exc:
            raise SourceError(
                _("cannot read {path}: {reason}").format(path=self.location, reason=exc.strerror or exc)
            ) from exc
        visited = {(st.st_dev, st.st_ino)}

        def expand(folder: _Folder) -> tuple[Iterator[SourceEntry | _Folder], int]:
            if folder.folders[-1] in visited:  # a bind mount of a folder inside itself: read once
                raise FolderNotRead(_("this folder was not read: it is a folder read already (a loop)"))
            visited.add(folder.folders[-1])
            children = self._list(folder)
            return iter(children), len(children)

        yield from bounded_walk(
            iter(listing),
            len(listing),
            descend=lambda item: (item, item.depth) if isinstance(item, _Folder) else None,
            expand=expand,
            error=self._folder_error,
            stop=stop,
        )

    def _folder_error(self, folder: _Folder, reason: str) -> SourceEntry:
        named = _named(list(folder.parts), ["posix"] * len(folder.parts), set(folder.altered), folder.exact)
        return SourceEntry(folder.shown, 0, None, error=reason, **named)

    def _list(self, folder: _Folder) -> list[SourceEntry | _Folder]:
        """A folder's files in name order, then its subfolders in name order (as os.walk gives them).

        At most :data:`MAX_FOLDER_ENTRIES` entries are read from one folder; the
        folder is then named as read only in part.
        """
        files: list[tuple[str, SourceEntry]] = []
        folders: list[tuple[str, _Folder]] = []
        too_many = None
        with os.scandir(folder.path) as listing:
            for child in listing:
                if len(files) + len(folders) >= MAX_FOLDER_ENTRIES:
                    reason = _("it holds more than {n} entries; the rest were not read").format(n=MAX_FOLDER_ENTRIES)
                    too_many = self._folder_error(
                        folder, _("this folder was read only in part: {reason}").format(reason=reason)
                    )
                    break
                raw = child.name
                assert isinstance(raw, bytes)
                shown = names.show_posix(raw)
                path = folder.shown + shown.text
                altered = folder.altered | shown.altered
                exact = folder.exact and not shown.altered
                parts = (*folder.parts, raw)
                try:
                    st = child.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone since it was listed
                if stat.S_ISDIR(st.st_mode):
                    ids = (*folder.folders, (st.st_dev, st.st_ino))
                    folders.append(
                        (shown.text, _Folder(child.path, path + "/", parts, ids, altered, exact, folder.depth + 1))
                    )
                    continue
                named = _named(list(parts), ["posix"] * len(parts), set(altered), exact)
                if not stat.S_ISREG(st.st_mode):
                    entry = SourceEntry(path, 0, None, special=True, **named)  # links are never followed
                else:
                    identity = FileIdentity(parts, folder.folders, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                    mtime = datetime.fromtimestamp(st.st_mtime, UTC)
                    entry = SourceEntry(path, st.st_size, mtime, identity, **named)
                files.append((shown.text, entry))
        files.sort(key=lambda pair: pair[0])
        folders.sort(key=lambda pair: pair[0])
        return [e for _n, e in files] + ([too_many] if too_many else []) + [f for _n, f in folders]

    def path_of(self, entry: SourceEntry) -> bytes:
        """The file's path as bytes, from its stored name components (the shown path may hold escapes)."""
        identity: FileIdentity = entry.handle
        return os.path.join(self._root, *identity.parts)

    def open(self, entry: SourceEntry) -> BinaryIO:
        identity: FileIdentity = entry.handle
        fd = os.open(self.path_of(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (identity.dev, identity.ino):
            os.close(fd)
            raise OSError(errno.ESTALE, _("the file was replaced since the card was listed"))
        return open(fd, "rb", buffering=0)  # type: ignore[return-value]

    def recheck(self, entry: SourceEntry) -> str | None:
        identity: FileIdentity = entry.handle
        try:
            st = os.lstat(self.path_of(entry))
        except FileNotFoundError:
            return _("the file disappeared while it was read")
        except OSError as exc:  # a card pulled out answers EIO: the card's fault, not the store's
            return _("the card could not be read after the copy: {reason}").format(reason=exc.strerror or exc)
        if not identity.matches(st):
            return _("the file changed while it was read")
        return None

    def close(self) -> None:
        pass


def _find_volume(fh: BinaryIO) -> tuple[int, int | None]:
    """Offset (and size) of the FAT/exFAT volume: the image itself, or its first FAT partition (MBR)."""
    fh.seek(0)
    sector = fh.read(SECTOR)
    if len(sector) < SECTOR:
        raise SourceError(_("the image is too small to hold a FAT or exFAT filesystem"))
    if _is_volume_boot_record(sector):
        return 0, None
    if sector[510:512] == b"\x55\xaa":
        for i in range(4):
            entry = sector[446 + 16 * i : 446 + 16 * (i + 1)]
            ptype = entry[4]
            lba, count = struct.unpack("<II", entry[8:16])
            if ptype in _FAT_PARTITION_TYPES and lba:
                fh.seek(lba * SECTOR)
                if _is_volume_boot_record(fh.read(SECTOR)):
                    return lba * SECTOR, count * SECTOR
    raise SourceError(_("no FAT or exFAT filesystem found (is this a card image?)"))


def _is_volume_boot_record(sector: bytes) -> bool:
    if sector[3:11] == b"EXFAT   ":
        return True
    return sector[510:512] == b"\x55\xaa" and (sector[82:87] == b"FAT32" or sector[54:57] == b"FAT")


class CardImageSource:
    """A raw FAT12/16/32 or exFAT card image or block device, read-only, never mounted (avlog.ingest.cardfs)."""

    parallel_reads = False  # one card; a card reads fastest sequentially anyway

    def __init__(self, path: Path, local_tz: tzinfo):
        self.path = path  # what is opened (and, when clearing, written)
        self.location = names.show_path(path)  # for messages and records
        self.local_tz = local_tz
        try:
            self.fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - kept open for the ingest
        except PermissionError as exc:
            raise SourceError(_("cannot read {path}: permission denied").format(path=self.location)) from exc
        except OSError as exc:
            raise SourceError(
                _("cannot open {path}: {reason}").format(path=self.location, reason=exc.strerror)
            ) from exc
        # The runs each file was read from, by the location of its directory entry: clearing frees only these.
        self.read_runs: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        try:
            offset, size = _find_volume(self.fh)
            self.offset = offset  # where the filesystem starts in the image (after a partition table)
            available = self.fh.seek(0, os.SEEK_END) - offset  # works for block devices too
            # A partition table may promise more than an incomplete copy of the card holds.
            self.size = available if size is None else min(size, available)
            self.fs = self.reread()
            self.kind = self.fs.kind
            declared = self.fs.declared_size
            if declared > self.size:
                # An incomplete copy of a card: files and whole folders past its end would vanish silently.
                raise SourceError(
                    _(
                        "{path} is shorter than the filesystem it holds ({size} of {declared} bytes): "
                        "an incomplete copy of the card?"
                    ).format(path=self.location, size=self.size, declared=declared)
                )
        except SourceError:
            self.fh.close()
            raise
        except (DissectError, CardDamage, OSError, ValueError, struct.error) as exc:  # damaged or foreign
            self.fh.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SourceError(
                _("cannot read the filesystem in {path}: {reason}").format(path=self.location, reason=reason)
            ) from exc

    def reread(self) -> CardFS:
        """The card's filesystem parsed afresh from its boot sector, with nothing cached from earlier reads."""
        return open_card_fs(self.fh.fileno(), self.offset, self.size, self.local_tz)

    def entries(self, should_stop: StopFlag = None) -> Iterator[SourceEntry]:
        try:
            for listed in self.fs.walk(should_stop):
                yield _entry(listed)
        except OSError as exc:  # the root folder itself cannot be read (CardDamage, EIO): nothing on the card can be
            raise SourceError(
                _("cannot read the directory tree of {path}: {reason}").format(
                    path=self.location, reason=exc.strerror or exc
                )
            ) from exc

    def open(self, entry: SourceEntry) -> BinaryIO:
        handle: CardHandle = entry.handle
        runs = self.read_runs.get(handle.slots)  # one file is opened up to three times by an ingest
        if runs is None:
            runs = self.fs.runs(handle)  # CardDamage (an OSError) names what cannot be trusted: the file fails alone
            self.read_runs[handle.slots] = runs
        return self.fs.open(handle, runs)

    def recheck(self, entry: SourceEntry) -> str | None:
        return None  # the image is read-only to us and nothing else writes a card we read raw

    def close(self) -> None:
        self.fh.close()


def _entry(listed: Listed) -> SourceEntry:
    named = _named(list(listed.parts), list(listed.encodings), set(listed.altered), listed.exact)
    if listed.error is not None:
        return SourceEntry(listed.path, 0, None, error=listed.error, **named)
    return SourceEntry(listed.path, listed.size, listed.mtime, listed.handle, skip=listed.skip, **named)


def open_source(path: Path, local_tz: tzinfo) -> Source:
    """A folder → :class:`FolderSource`; a file or block device → :class:`CardImageSource`."""
    shown = names.show_path(path)
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise SourceError(_("{path} does not exist").format(path=shown)) from exc
    except PermissionError as exc:
        raise SourceError(_("cannot read {path}: permission denied").format(path=shown)) from exc
    if stat.S_ISDIR(st.st_mode):
        return FolderSource(path)
    if stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return CardImageSource(path, local_tz)
    raise SourceError(_("{path} is neither a folder, a card image nor a block device").format(path=shown))
