"""Real sample recordings made with PyAV: the demo card, and the fixtures tests and benchmarks build on.

Nothing here is a stand-in: every video is a real MPEG-4 file with its
``creation_time`` set the way a camera sets it, every audio file a real WAV,
every photo a real JPEG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from fractions import Fraction
from pathlib import Path

import av


def write_video(
    path: Path,
    *,
    start: datetime | None,
    seconds: float,
    fps: int = 10,
    width: int = 320,
    height: int = 240,
    noise: bool = False,
    bitrate: int | None = None,
) -> Path:
    """An MPEG-4 clip of ``seconds`` at ``fps``; ``noise`` makes it incompressible (for benchmarks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        if start is not None:
            out.metadata["creation_time"] = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bitrate:
            stream.bit_rate = bitrate
        if noise:
            stream.codec_context.qmax = stream.codec_context.qmin = 2
        for i in range(max(1, round(seconds * fps))):
            frame = av.VideoFrame(width, height, "yuv420p")
            for n, plane in enumerate(frame.planes):
                if noise:
                    plane.update(os.urandom(plane.buffer_size))
                else:
                    plane.update(bytes([(i * 5 + n * 60) % 256]) * plane.buffer_size)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio(path: Path, *, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV recording of a quiet tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        per_frame = 800
        for i in range(max(1, round(seconds * rate / per_frame))):
            frame = av.AudioFrame(format="s16", layout="mono", samples=per_frame)
            frame.planes[0].update(bytes((j * 13 + i) % 64 for j in range(per_frame * 2)))
            frame.sample_rate = rate
            frame.pts = i * per_frame
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_photo(path: Path, *, width: int = 320, height: int = 240) -> Path:
    """A JPEG still, as a camera's photo button writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        frame = av.VideoFrame(width, height, "yuvj420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(n * 90 + 40) % 256]) * plane.buffer_size)
        frame.pts = 0
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file short, as a battery dying mid-recording leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))
    return path


@dataclass
class SampleCard:
    """What a sample card holds, for reports and for tests to check against."""

    root: Path
    recordings: list[str] = field(default_factory=list)  # card-relative paths of recordings
    system_files: list[str] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    gap_after: str | None = None  # the clip after which a gap was planted
    truncated: str | None = None
    duplicate_of: dict[str, str] = field(default_factory=dict)


def build_demo_card(root: Path, *, shift_end: datetime, tz: tzinfo = UTC, segment_s: float = 3.0) -> SampleCard:
    """A body-camera card from one shift ending at ``shift_end``.

    Three consecutive segments, a planted gap of ten minutes, two more
    segments, a truncated last clip, the same content under a second name, a
    voice recording with a Chinese name, a photo, the recorder's settings
    file and a system folder.
    """
    card = SampleCard(root=root)
    start = (shift_end - timedelta(minutes=30)).astimezone(tz)  # cameras name files in local time

    def name(moment: datetime, n: int) -> str:
        return f"{moment.strftime('%Y%m%d_%H%M%S')}_{n:04d}.MP4"

    moment, n = start, 1
    for block, count in ((0, 3), (1, 3)):
        if block:
            card.gap_after = card.recordings[-1]
            moment += timedelta(minutes=10)
        for _ in range(count):
            rel = f"DCIM/100MEDIA/{name(moment, n)}"
            write_video(root / rel, start=moment, seconds=segment_s)
            card.recordings.append(rel)
            moment += timedelta(seconds=segment_s)
            n += 1
    card.truncated = card.recordings[-1]
    truncate(root / card.truncated)
    copy = "DCIM/100MEDIA/COPY0001.MP4"
    (root / copy).write_bytes((root / card.recordings[0]).read_bytes())
    card.recordings.append(copy)
    card.duplicate_of[copy] = card.recordings[0]
    voice = f"录音/巡查记录_{(start + timedelta(minutes=2)).strftime('%Y%m%d_%H%M%S')}.wav"
    write_audio(root / voice, seconds=2)
    card.recordings.append(voice)
    photo = f"DCIM/100MEDIA/IMG_{(start + timedelta(minutes=1)).strftime('%Y%m%d_%H%M%S')}.JPG"
    write_photo(root / photo)
    card.recordings.append(photo)
    (root / "DEVICE.INI").write_text("[device]\nmodel=DSJ-V8\nserial=DEMO-0001\n", encoding="ascii")
    card.other_files.append("DEVICE.INI")
    svi = root / "System Volume Information"
    svi.mkdir()
    (svi / "IndexerVolumeGuid").write_bytes(b"{00000000-0000-0000-0000-000000000000}")
    card.system_files.append("System Volume Information/IndexerVolumeGuid")
    return card
