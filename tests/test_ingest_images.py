"""Ingest from raw card images (FAT32, exFAT, MBR-partitioned), read without mounting and never written."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from avlog.samples import SampleCard
from conftest import Cli, exfat_mounted, make_exfat_image, make_fat32_image, register, require_tool, run_avlog

MAKERS: dict[str, Callable[[Path, Path], Path]] = {"fat32": make_fat32_image, "exfat": make_exfat_image}
SECTOR = 512


def digests(data: bytes) -> tuple[str, str, int]:
    """BLAKE3, SHA-256 and size, computed here and not by avlog."""
    return blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest_json(cli: Cli, source: Path, serial: str = "BC-0001") -> dict[str, Any]:
    result = cli("ingest", "--from", str(source), "--device-serial", serial, "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def assert_card_ingested(cli: Cli, store: Path, card: SampleCard, doc: dict[str, Any]) -> None:
    """Every recording of ``card`` is in the store under its folder path, with the source file's digests."""
    assert doc["failed"] == 0
    assert doc["skipped"] == {"system": len(card.system_files), "not_media": len(card.other_files)}
    assert sorted(c["original_path"] for c in doc["clips"]) == sorted(card.recordings)
    listed = cli("ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    clips = {c["original_path"]: c for c in json.loads(listed.stdout)["clips"]}
    assert set(clips) == set(card.recordings)
    for rel in card.recordings:
        data = (card.root / rel).read_bytes()
        b3, sha, size = digests(data)
        clip = clips[rel]
        assert (clip["blake3"], clip["sha256"], clip["size"]) == (b3, sha, size), rel
        assert (store / "objects" / b3[:2] / b3).read_bytes() == data, rel


def mbr_image(filesystem: Path, image: Path, ptype: int) -> Path:
    """A disk image: an MBR with one partition of type ``ptype`` at 1 MiB, holding ``filesystem``."""
    body = filesystem.read_bytes()
    assert len(body) % SECTOR == 0
    start = (1 << 20) // SECTOR
    entry = struct.pack("<B3sB3sII", 0x00, b"\x00\x02\x00", ptype, b"\xfe\xff\xff", start, len(body) // SECTOR)
    mbr = bytearray(SECTOR)
    struct.pack_into("<I", mbr, 440, 0x1D2C3B4A)  # disk signature
    mbr[446 : 446 + 16] = entry
    mbr[510:512] = b"\x55\xaa"
    with open(image, "wb") as f:
        f.write(mbr)
        f.write(bytes((1 << 20) - SECTOR))
        f.write(body)
    return image


@pytest.mark.parametrize("kind", ["fat32", "exfat"])
def test_card_image_ingests_every_recording_intact(
    kind: str, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    image = MAKERS[kind](demo_card.root, tmp_path / f"{kind}.img")
    before = file_sha256(image)
    mtime = image.stat().st_mtime_ns
    register(cli)
    doc = ingest_json(cli, image)
    assert doc["source_kind"] == ("fat" if kind == "fat32" else "exfat")
    assert_card_ingested(cli, store, demo_card, doc)
    voice = next(r for r in demo_card.recordings if r.startswith("录音/巡查记录_"))
    assert voice in {c["original_path"] for c in doc["clips"]}
    assert file_sha256(image) == before, "the card image was written to"
    assert image.stat().st_mtime_ns == mtime
    gaps = [f for f in doc["findings"] if f["kind"] == "gap"]
    assert len(gaps) == 1


@pytest.mark.parametrize("kind", ["fat32", "exfat"])
def test_image_and_folder_of_one_card_are_the_same_content(
    kind: str, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    """The card read raw and the card as a folder give the same contents: the second adds no object."""
    image = MAKERS[kind](demo_card.root, tmp_path / f"{kind}.img")
    register(cli)
    ingest_json(cli, demo_card.root)
    objects = sorted(p.name for p in (store / "objects").rglob("*") if p.is_file())
    again = ingest_json(cli, image)
    assert again["stored"] == 0
    assert again["duplicates"] == len(demo_card.recordings)
    assert sorted(p.name for p in (store / "objects").rglob("*") if p.is_file()) == objects


@pytest.mark.parametrize(("kind", "ptype"), [("fat32", 0x0C), ("exfat", 0x07)])
def test_mbr_partitioned_image_is_read(
    kind: str, ptype: int, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    filesystem = MAKERS[kind](demo_card.root, tmp_path / f"{kind}.fs")
    disk = mbr_image(filesystem, tmp_path / "disk.img", ptype)
    assert disk.read_bytes()[:SECTOR] != filesystem.read_bytes()[:SECTOR]
    before = file_sha256(disk)
    register(cli)
    doc = ingest_json(cli, disk)
    assert_card_ingested(cli, store, demo_card, doc)
    assert file_sha256(disk) == before


def test_partition_of_a_foreign_type_is_not_taken(cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path) -> None:
    filesystem = make_fat32_image(demo_card.root, tmp_path / "fat32.fs")
    disk = mbr_image(filesystem, tmp_path / "disk.img", 0x83)  # a Linux partition
    register(cli)
    result = cli("ingest", "--from", str(disk), "--device-serial", "BC-0001")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not [p for p in (store / "objects").rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: os.urandom(4 << 20), id="random-4MiB"),
        pytest.param(lambda: bytes(1 << 20), id="zeros-1MiB"),
        pytest.param(lambda: os.urandom(100), id="random-100B"),
        pytest.param(lambda: b"", id="empty"),
    ],
)
def test_a_file_that_is_not_a_filesystem_fails_in_one_line(
    content: Callable[[], bytes], cli: Cli, store: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(content())
    register(cli)
    proc = run_avlog(store, "ingest", "--from", str(junk), "--device-serial", "BC-0001")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(junk) in lines[0] or "FAT" in lines[0]
    assert proc.stdout == ""
    assert not [p for p in (store / "objects").rglob("*") if p.is_file()]


# -- fragmented files: a file's clusters are not one run ---------------------------------------------


def test_fragmented_file_on_fat32_is_read_whole(cli: Cli, store: Path, tmp_path: Path) -> None:
    require_tool("mkfs.vfat")
    require_tool("mshowfat")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(1, 7):
        (src / f"S{i}.BIN").write_bytes(os.urandom(8192))
    clip = src / "FRAG0001.MP4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(100_000))
    image = tmp_path / "frag.img"
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(["mkfs.vfat", "-F", "32", "-s", "1", "-C", str(image), "40000"], check=True, capture_output=True)
    fillers = [str(src / f"S{i}.BIN") for i in range(1, 7)]
    subprocess.run(["mcopy", "-i", str(image), *fillers, "::/"], check=True, capture_output=True, env=env)
    subprocess.run(["mdel", "-i", str(image), "::/S2.BIN", "::/S4.BIN"], check=True, capture_output=True, env=env)
    with open(image, "r+b") as f:  # FSInfo: search for free clusters from the start, so the holes are used
        f.seek(SECTOR + 492)
        f.write(struct.pack("<I", 2))
    subprocess.run(["mcopy", "-i", str(image), str(clip), "::/"], check=True, capture_output=True, env=env)
    chain = subprocess.run(
        ["mshowfat", "-i", str(image), "::/FRAG0001.MP4"], check=True, capture_output=True, text=True, env=env
    ).stdout
    assert chain.count("<") >= 2, f"the test file is not fragmented: {chain}"

    register(cli)
    doc = ingest_json(cli, image)
    (item,) = [c for c in doc["clips"] if c["original_path"] == "FRAG0001.MP4"]
    b3, sha, size = digests(clip.read_bytes())
    assert (item["blake3"], item["sha256"], item["size"]) == (b3, sha, size)
    assert (store / "objects" / b3[:2] / b3).read_bytes() == clip.read_bytes()


def test_fragmented_file_on_exfat_is_read_whole(cli: Cli, store: Path, tmp_path: Path) -> None:
    require_tool("mkfs.exfat")
    image = tmp_path / "frag.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.exfat", "-c", "4K", str(image)], check=True, capture_output=True)
    payload = b"\x00\x00\x00\x18ftypmp42" + os.urandom(100_000)
    with exfat_mounted(image) as mnt:
        for i in range(1, 7):
            (mnt / f"S{i}.BIN").write_bytes(os.urandom(8192))
        subprocess.run(["sync"], check=True)
        (mnt / "S2.BIN").unlink()
        (mnt / "S4.BIN").unlink()
        subprocess.run(["sync"], check=True)
        (mnt / "FRAG0001.MP4").write_bytes(payload)

    from dissect.fat import ExFAT  # only to confirm the precondition: the file really is in pieces

    with open(image, "rb") as f:
        entry = ExFAT(f).files["/"][1]["FRAG0001.MP4"][0]
        assert not entry.stream.flags.not_fragmented, "the test file is not fragmented"

    register(cli)
    doc = ingest_json(cli, image)
    (item,) = [c for c in doc["clips"] if c["original_path"] == "FRAG0001.MP4"]
    b3, sha, size = digests(payload)
    assert (item["blake3"], item["sha256"], item["size"]) == (b3, sha, size)
    assert (store / "objects" / b3[:2] / b3).read_bytes() == payload


@pytest.mark.parametrize("make", [make_fat32_image, make_exfat_image], ids=["fat32", "exfat"])
def test_an_incomplete_copy_of_a_card_is_refused_not_half_read(
    cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path, make: Callable[[Path, Path], Path]
) -> None:
    image = make(demo_card.root, tmp_path / "card.img")
    with open(image, "r+b") as f:  # a dd copy that stopped early
        f.truncate(image.stat().st_size // 2)
    register(cli)
    result = cli("ingest", "--from", str(image), "--device-serial", "BC-0001")
    assert result.exit_code == 1, result.stderr
    assert "shorter than the filesystem" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list((store / "objects").rglob("*"))
