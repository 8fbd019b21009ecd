"""What a file on a card is, and what its container says about it (PyAV).

Recordings are taken by extension or by their first bytes; system and
configuration files are skipped. A clip's start comes from its container's
``creation_time``, else from a timestamp in its file name, else from the file's
modification time (the moment the recorder closed it, so the end); which one
was used is kept as ``time_source``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import av

VIDEO_EXTENSIONS = frozenset(
    [
        "mp4",
        "m4v",
        "mov",
        "avi",
        "mkv",
        "mts",
        "m2ts",
        "ts",
        "mpg",
        "mpeg",
        "3gp",
        "3g2",
        "wmv",
        "asf",
        "flv",
        "h264",
        "h265",
        "hevc",
        "lrv",
        "webm",
    ]
)
AUDIO_EXTENSIONS = frozenset(["wav", "mp3", "m4a", "aac", "amr", "wma", "ogg", "opus", "flac"])
PHOTO_EXTENSIONS = frozenset(["jpg", "jpeg", "png", "heic", "heif", "dng", "bmp", "tif", "tiff"])

# Folders and files an operating system or a recorder keeps for itself.
SYSTEM_FOLDERS = frozenset(
    name.lower()
    for name in (
        "System Volume Information",
        "$RECYCLE.BIN",
        "RECYCLER",
        ".Trashes",
        ".Trash-1000",
        ".Spotlight-V100",
        ".fseventsd",
        ".TemporaryItems",
        "LOST.DIR",
        "FOUND.000",
        ".thumbnails",
    )
)
SYSTEM_FILES = frozenset(name.lower() for name in ("Thumbs.db", "desktop.ini", ".DS_Store", "autorun.inf"))

SNIFF_BYTES = 512


def skip_reason(path: str) -> str | None:
    """``"system"`` for files the ingest never reads (system folders and files), else None."""
    parts = path.split("/")
    if any(p.lower() in SYSTEM_FOLDERS for p in parts[:-1]):
        return "system"
    name = parts[-1]
    if name.lower() in SYSTEM_FILES or name.startswith("._"):
        return "system"
    return None


def kind_by_extension(path: str) -> str | None:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in PHOTO_EXTENSIONS:
        return "photo"
    return None


def kind_by_magic(head: bytes) -> str | None:
    """Recognise a recording from its first bytes, whatever its name says."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "photo"
        return "video"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") and len(head) >= 8:
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] in (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75") or head[:3] == b"FLV":
        return "video"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "video"  # MPEG transport stream
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n":
        return "photo"
    if head[:3] == b"ID3" or head[:5] == b"#!AMR" or head[:4] in (b"OggS", b"fLaC"):
        return "audio"
    return None


@dataclass(frozen=True)
class MediaInfo:
    start: datetime | None
    end: datetime | None
    duration_s: float | None
    container: str | None
    codec: str | None
    time_source: str | None  # container | filename | mtime
    error: str | None  # why the container could not be read, when it could not


_FILENAME_TIME = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})[-_]?(?P<mo>[01]\d)[-_]?(?P<d>[0-3]\d)[-_T ]?"
    r"(?P<h>[0-2]\d)[-_:]?(?P<mi>[0-5]\d)[-_:]?(?P<s>[0-5]\d)(?!\d)"
)


def time_from_name(name: str, tz: tzinfo) -> datetime | None:
    """A recording time written in a file name (``20261126_093015``, ``2026-11-26_09-30-15`` …), in ``tz``."""
    for match in _FILENAME_TIME.finditer(name):
        try:
            y, mo, d, h, mi, sec = (int(match[g]) for g in ("y", "mo", "d", "h", "mi", "s"))
            return datetime(y, mo, d, h, mi, sec, tzinfo=tz)
        except ValueError:
            continue
    return None


def time_from_path(path: str, tz: tzinfo) -> datetime | None:
    """:func:`time_from_name` of the file name alone of a card path ("DCIM/100MEDIA/20261126_093015.MP4"),
    as :func:`probe` reads it: a folder named by date says nothing about one recording's time."""
    return time_from_name(path.rsplit("/", 1)[-1], tz)


def _container_time(text: str | None, tz: tzinfo) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def probe(path: Path, original_name: str, mtime: datetime | None, tz: tzinfo) -> MediaInfo:
    """Read the container header of the stored copy at ``path``; never raises for a bad file."""
    duration = container = codec = created = error = None
    try:
        with av.open(str(path), metadata_errors="ignore") as media:
            container = media.format.name
            if media.duration is not None and media.duration > 0:
                duration = media.duration / av.time_base
            created = media.metadata.get("creation_time")
            for stream in list(media.streams.video) + list(media.streams.audio):
                codec = codec or stream.codec_context.name
                created = created or stream.metadata.get("creation_time")
    except av.FFmpegError as exc:
        error = exc.strerror or type(exc).__name__  # without the store path ffmpeg appends
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        error = str(exc) or type(exc).__name__
    if container == "image2":  # a still photo has no duration of its own
        duration = None
    start = _container_time(created, tz)
    source = "container" if start else None
    if start is None:
        start = time_from_name(original_name, tz)
        source = "filename" if start else None
    length = timedelta(seconds=duration) if duration is not None else timedelta(0)
    if start is not None:
        end = start + length
    elif mtime is not None:
        end, start, source = mtime, mtime - length, "mtime"
    else:
        end = None
    return MediaInfo(start, end, duration, container, codec, source, error)
