"""Hostile cards: crafted FAT12/16/32 and exFAT images, and folder cards with names that are not text.

Each card is made by the real tools (mkfs.vfat, mkfs.exfat, mtools, exfat-fuse) and then byte-patched
(tests/cardcraft.py). Every ingest runs as a separate process with a time limit, so a card that makes
the reader loop fails the test instead of hanging it. Each test checks: the run ends, its exit code is
SPEC's (4 when some files failed), every file on the card is stored, failed or skipped with a reason,
the damaged item is named, no traceback, and no stored path holds "..", a control character or a
name that is not one component.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from avlog.context import open_context
from avlog.ingest.pipeline import ingest
from avlog.ingest.sources import CardImageSource, FolderSource, SourceEntry
from cardcraft import Exfat, Fat, clip, make_card, make_exfat, make_fat
from conftest import TZ, catalog_rows, error_line, run_avlog

SERIAL = "BC-0001"
SETTINGS = b"[recorder]\nserial=BC-0001\nresolution=1080p\n"


def base_files() -> dict[str, bytes]:
    """A recorder's card: three clips (one with a long name) and the recorder's settings file."""
    return {
        "DCIM/100MEDIA/CLIP0001.MP4": clip(1),
        "DCIM/100MEDIA/CLIP0002.MP4": clip(2),
        "DCIM/100MEDIA/Clip three.mp4": clip(3),
        "CFG/SET.INI": SETTINGS,
    }


CLIPS = ["DCIM/100MEDIA/CLIP0001.MP4", "DCIM/100MEDIA/CLIP0002.MP4", "DCIM/100MEDIA/Clip three.mp4"]


@pytest.fixture
def registered(store: Path) -> Path:
    done = run_avlog(store, "device", "register", SERIAL, "--custodian", "张三", "--unit", "一中队")
    assert done.returncode == 0, done.stderr
    return store


def run_ingest(store: Path, source: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``avlog ingest --from SOURCE --json`` as its own process; a run that never ends fails the test."""
    try:
        result = run_avlog(store, "ingest", "--from", str(source), "--device-serial", SERIAL, "--json", *extra,
                           timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the ingest of {source} did not end within {exc.timeout} s")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)


def assert_safe_paths(store: Path) -> None:
    """No stored path (clip or ingest item) has an empty, "." or ".." component or a control character."""
    rows = catalog_rows(store, "SELECT original_path AS p FROM clips UNION ALL SELECT original_path FROM ingest_items")
    assert rows
    for row in rows:
        path = row["p"]
        parts = path[:-1].split("/") if path.endswith("/") else path.split("/")
        assert all(p not in ("", ".", "..") for p in parts), path
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path), path


def check(
    result: subprocess.CompletedProcess[str],
    doc: dict[str, Any],
    store: Path,
    *,
    stored: list[str],
    failed: dict[str, str] | None = None,
    skipped: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """The run's outcome is exactly this: which files were stored, which failed (with a word of the reason)."""
    failed = failed or {}
    items = doc["clips"]
    assert Counter(c["original_path"] for c in items if c["status"] == "stored") == Counter(stored), items
    got_failed = {c["original_path"]: c["error"] for c in items if c["status"] == "failed"}
    assert set(got_failed) == set(failed), got_failed
    for path, word in failed.items():
        assert word in got_failed[path], (path, got_failed[path])
    assert len(items) == len(stored) + len(failed)
    if skipped is not None:
        assert doc["skipped"] == skipped
    if failed:
        assert result.returncode == (4 if stored else 1), result.stderr
        line = error_line(result.stderr)
        for path in failed:
            assert path in line, line
    else:
        assert result.returncode == 0, result.stderr
    assert_safe_paths(store)
    return {c["original_path"]: c for c in items}


def listing(image: Path) -> dict[str, SourceEntry]:
    source = CardImageSource(image, TZ)
    try:
        return {e.path: e for e in source.entries()}
    finally:
        source.close()


def fat_bits(kind: str) -> int:
    return int(kind[3:])


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fat12", "fat16", "fat32"])
def test_a_short_name_with_a_slash_is_one_escaped_component(kind: str, registered: Path, tmp_path: Path) -> None:
    """The attack that once made clearing delete the settings file: an 8.3 name ``CFG/SET.INI`` in the root."""
    image = make_fat(fat_bits(kind), tmp_path / "card.img", {**base_files(), "ROGUE.MP4": clip(4)})
    fat = Fat(image)
    fat.set_short(fat.find("ROGUE.MP4"), b"CFG/SET INI")
    fat.save()

    result, doc = run_ingest(registered, image)

    hostile = "CFG\\x2fSET.INI"
    check(result, doc, registered, stored=[*CLIPS, hostile], skipped={"not_media": 1})
    entries = listing(image)
    assert entries["CFG/SET.INI"].original_name is None  # the real settings file, named as it is
    assert entries[hostile].original_name == {"encoding": "fat-8.3", "parts": [b"CFG/SET INI".hex()]}
    assert entries[hostile].name_note and "slash" in entries[hostile].name_note


@pytest.mark.parametrize("kind", ["fat16", "fat32"])
def test_dot_names_are_escaped_and_a_dot_folder_is_a_loop(kind: str, registered: Path, tmp_path: Path) -> None:
    files = {**base_files(), "DOT.MP4": clip(4), "DOTDOT.MP4": clip(5), "DCIM/LOOP/X.TXT": b"x"}
    image = make_fat(fat_bits(kind), tmp_path / "card.img", files)
    fat = Fat(image)
    fat.set_short(fat.find("DOT.MP4"), b".          ")
    fat.set_short(fat.find("DOTDOT.MP4"), b"..         ")
    fat.set_long(fat.find("DCIM/100MEDIA/Clip three.mp4"), "..".encode("utf-16-le"))
    loop = fat.find("DCIM/LOOP")  # a folder named ".." beyond the first two slots, pointing at the root
    fat.set_short(loop, b"..         ")
    fat.set_cluster(loop, 0 if fat.bits != 32 else fat.root_cluster)
    fat.save()

    result, doc = run_ingest(registered, image)

    check(
        result,
        doc,
        registered,
        stored=["\\x2e", "\\x2e\\x2e", "DCIM/100MEDIA/CLIP0001.MP4", "DCIM/100MEDIA/CLIP0002.MP4",
                "DCIM/100MEDIA/\\x2e\\x2e"],
        failed={"DCIM/\\x2e\\x2e/": "loop" if fat.bits == 32 else "not on the card"},
        skipped={"not_media": 1},
    )  # fmt: skip
    entries = listing(image)
    assert entries["DCIM/100MEDIA/\\x2e\\x2e"].original_name == {
        "encoding": "utf-16le",
        "parts": [b"DCIM       ".hex(), b"100MEDIA   ".hex(), "..".encode("utf-16-le").hex()],  # 8.3 as stored
        "encodings": ["fat-8.3", "fat-8.3", "utf-16le"],
    }


def test_nul_and_control_characters_are_escaped(registered: Path, tmp_path: Path) -> None:
    image = make_fat(32, tmp_path / "card.img", {**base_files(), "CTRL.MP4": clip(4), "ZERO.MP4": clip(5)})
    fat = Fat(image)
    fat.set_short(fat.find("CTRL.MP4"), b"C\x01RL    MP4")
    fat.set_short(fat.find("ZERO.MP4"), b"Z\x00RO    MP4")
    fat.set_long(fat.find("DCIM/100MEDIA/Clip three.mp4"), "\x1b[31mR\x7f\x9b.mp4".encode("utf-16-le"))
    fat.save()

    result, doc = run_ingest(registered, image)

    odd = "DCIM/100MEDIA/\\x1b[31mR\\x7f\\u009b.mp4"
    check(
        result,
        doc,
        registered,
        stored=["C\\x01RL.MP4", "Z\\x00RO.MP4", "DCIM/100MEDIA/CLIP0001.MP4", "DCIM/100MEDIA/CLIP0002.MP4", odd],
        skipped={"not_media": 1},
    )
    note = listing(image)[odd].name_note
    assert note and "Control characters" in note
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr


def test_the_volume_label_bit_on_a_file_is_counted_as_skipped(registered: Path, tmp_path: Path) -> None:
    image = make_fat(16, tmp_path / "card.img", base_files())
    fat = Fat(image)
    hidden = fat.find("DCIM/100MEDIA/CLIP0002.MP4")
    fat.set_field(hidden, 11, hidden.attr | 0x08, 1)
    fat.save()

    result, doc = run_ingest(registered, image)

    stored = [p for p in CLIPS if p != "DCIM/100MEDIA/CLIP0002.MP4"]
    check(result, doc, registered, stored=stored, skipped={"not_media": 1, "volume_label": 1})
    assert listing(image)["DCIM/100MEDIA/CLIP0002.MP4"].skip == "volume_label"


@pytest.mark.parametrize("kind", ["fat32", "exfat"])
def test_an_invalid_utf16_name_is_shown_escaped_and_kept(kind: str, registered: Path, tmp_path: Path) -> None:
    image = make_card(kind, tmp_path / "card.img", base_files())
    units = "bad".encode("utf-16-le") + b"\x00\xd8" + "x.mp4".encode("utf-16-le")
    if kind == "exfat":
        exfat = Exfat(image)
        exfat.set_name(exfat.find("DCIM/100MEDIA/Clip three.mp4"), units)
        exfat.save()
    else:
        fat = Fat(image)
        fat.set_long(fat.find("DCIM/100MEDIA/Clip three.mp4"), units)
        fat.save()

    result, doc = run_ingest(registered, image)

    odd = "DCIM/100MEDIA/bad\\ud800x.mp4"
    check(result, doc, registered, stored=[*CLIPS[:2], odd], skipped={"not_media": 1})
    entry = listing(image)[odd]
    assert entry.original_name is not None and entry.original_name["parts"][-1] == units.hex()
    assert entry.original_name["encoding"] == "utf-16le"
    assert entry.name_note and "UTF-16" in entry.name_note


def test_a_long_name_whose_checksum_does_not_match_is_ignored(registered: Path, tmp_path: Path) -> None:
    image = make_fat(32, tmp_path / "card.img", base_files())
    fat = Fat(image)
    entry = fat.find("DCIM/100MEDIA/Clip three.mp4")
    for slot in entry.lfn:
        fat.buf[slot + 13] ^= 0x5A
    fat.save()
    short = entry.short[:8].rstrip().decode() + "." + entry.short[8:].rstrip().decode()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[*CLIPS[:2], f"DCIM/100MEDIA/{short}"], skipped={"not_media": 1})
    shown = listing(image)[f"DCIM/100MEDIA/{short}"]
    assert shown.original_name is None  # the short name is the stored name, shown exactly
    assert shown.name_note and "checksum" in shown.name_note


@pytest.mark.parametrize("kind", ["fat32", "exfat"])
def test_two_entries_with_one_name_are_both_ingested(kind: str, registered: Path, tmp_path: Path) -> None:
    files = {**base_files(), "DCIM/100MEDIA/Clip fourth.mp4": clip(4)}
    image = make_card(kind, tmp_path / "card.img", files)
    if kind == "exfat":
        exfat = Exfat(image)
        exfat.set_name(exfat.find("DCIM/100MEDIA/Clip fourth.mp4"), "Clip three.mp4".encode("utf-16-le"))
        exfat.save()
    else:
        fat = Fat(image)
        fat.set_long(fat.find("DCIM/100MEDIA/Clip fourth.mp4"), "Clip three.mp4".encode("utf-16-le"))
        fat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[*CLIPS, CLIPS[2]], skipped={"not_media": 1})
    digests = {c["blake3"] for c in doc["clips"]}
    assert len(digests) == 4  # two different recordings, both kept, under the one name the card gives them


def test_a_short_name_in_a_foreign_code_page_is_shown_as_bytes(registered: Path, tmp_path: Path) -> None:
    image = make_fat(12, tmp_path / "card.img", {**base_files(), "GBK.MP4": clip(4)})
    fat = Fat(image)
    fat.set_short(fat.find("GBK.MP4"), "录像".encode("gbk").ljust(8) + b"MP4")
    fat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[*CLIPS, "\\xc2\\xbc\\xcf\\xf1.MP4"], skipped={"not_media": 1})
    entry = listing(image)["\\xc2\\xbc\\xcf\\xf1.MP4"]
    assert entry.original_name == {"encoding": "fat-8.3", "parts": [("录像".encode("gbk") + b"    MP4").hex()]}


# -- chains and folders -----------------------------------------------------------------------------


def open_card(kind: str, image: Path) -> Fat | Exfat:
    return Exfat(image) if kind == "exfat" else Fat(image)


def chain_of(card: Fat | Exfat, path: str) -> list[int]:
    """A file's clusters, in a FAT chain (an exFAT file is turned into one first)."""
    if isinstance(card, Exfat):
        return card.use_fat_chain(card.find(path))
    entry = card.find(path)
    return card.chain(card.cluster_of(entry), -(-entry.size // card.cluster_size))


def end_of_chain(card: Fat | Exfat) -> int:
    return 0xFFFFFFFF if isinstance(card, Exfat) else {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[card.bits]


def bad_cluster(card: Fat | Exfat) -> int:
    return 0xFFFFFFF7 if isinstance(card, Exfat) else {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[card.bits]


KINDS = ["fat12", "fat16", "fat32", "exfat"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_whose_chain_loops_fails_alone(kind: str, registered: Path, tmp_path: Path) -> None:
    image = make_card(kind, tmp_path / "card.img", base_files())
    card = open_card(kind, image)
    clusters = chain_of(card, CLIPS[1])
    assert len(clusters) >= 3
    card.fat_set(clusters[2], clusters[0])  # the third cluster leads back to the first
    card.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[CLIPS[0], CLIPS[2]], failed={CLIPS[1]: "loops"})


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_whose_chain_is_short_fails_alone(kind: str, registered: Path, tmp_path: Path) -> None:
    image = make_card(kind, tmp_path / "card.img", base_files())
    card = open_card(kind, image)
    clusters = chain_of(card, CLIPS[0])
    card.fat_set(clusters[1], end_of_chain(card))
    card.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=CLIPS[1:], failed={CLIPS[0]: f"ends after 2 of the {len(clusters)}"})


@pytest.mark.parametrize("kind", KINDS)
def test_a_chain_into_free_bad_or_foreign_clusters_fails_alone(kind: str, registered: Path, tmp_path: Path) -> None:
    image = make_card(kind, tmp_path / "card.img", base_files())
    card = open_card(kind, image)
    one, two, three = (chain_of(card, path) for path in CLIPS)
    card.fat_set(one[0], 0)  # the FAT says its first cluster is free
    card.fat_set(two[1], bad_cluster(card))  # its second cluster is marked bad
    card.fat_set(three[0], card.clusters + 50)  # its chain goes on to a cluster the volume does not have
    card.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[], failed={CLIPS[0]: "free", CLIPS[1]: "marked bad", CLIPS[2]: "leaves"})


@pytest.mark.parametrize(("kind", "size"), [("fat12", 0xFFFFFF00), ("exfat", 1 << 40), ("exfat", (1 << 64) - 1)])
def test_a_file_larger_than_the_card_fails_alone(kind: str, size: int, registered: Path, tmp_path: Path) -> None:
    """exFAT sizes are 64-bit: one past what the catalog's integers hold must fail as any other (fuzzer's find)."""
    image = make_card(kind, tmp_path / "card.img", base_files())
    if kind == "exfat":
        exfat = Exfat(image)
        exfat.set_stream(exfat.find(CLIPS[0]), size=size, valid=size)
        exfat.save()
    else:
        fat = Fat(image)
        fat.set_field(fat.find(CLIPS[0]), 28, size, 4)
        fat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=CLIPS[1:], failed={CLIPS[0]: "more than the whole card holds"})


@pytest.mark.parametrize("kind", ["fat12", "fat16", "fat32"])
def test_a_folder_whose_chain_loops_is_read_once_and_named(kind: str, registered: Path, tmp_path: Path) -> None:
    image = make_fat(fat_bits(kind), tmp_path / "card.img", base_files())
    fat = Fat(image)
    folder = fat.cluster_of(fat.find("DCIM/100MEDIA"))
    fat.fat_set(folder, folder)  # the folder's only cluster is followed by itself
    fat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=CLIPS, failed={"DCIM/100MEDIA/": "loop"}, skipped={"not_media": 1})


def test_an_exfat_folder_whose_chain_loops_is_named(registered: Path, tmp_path: Path) -> None:
    image = make_exfat(tmp_path / "card.img", base_files())
    exfat = Exfat(image)
    folder = exfat.find("DCIM/100MEDIA")
    exfat.use_fat_chain(folder)
    exfat.set_stream(folder, size=3 * exfat.cluster_size)
    exfat.fat_set(folder.first, folder.first)
    exfat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[], failed={"DCIM/100MEDIA/": "loops"}, skipped={"not_media": 1})
    assert result.returncode == 1  # nothing could be ingested: one line, exit 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_pointing_back_at_an_ancestor_is_named(kind: str, registered: Path, tmp_path: Path) -> None:
    files = {**base_files(), "DCIM/100MEDIA/SUB/CLIP0009.MP4": clip(9)}
    image = make_card(kind, tmp_path / "card.img", files)
    if kind == "exfat":
        exfat = Exfat(image)
        exfat.set_stream(exfat.find("DCIM/100MEDIA/SUB"), first=exfat.find("DCIM").first)
        exfat.save()
    else:
        fat = Fat(image)
        fat.set_cluster(fat.find("DCIM/100MEDIA/SUB"), fat.cluster_of(fat.find("DCIM")))
        fat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=CLIPS, failed={"DCIM/100MEDIA/SUB/": "loop"}, skipped={"not_media": 1})


def test_an_exfat_entry_set_with_a_wrong_checksum_fails_named(registered: Path, tmp_path: Path) -> None:
    image = make_exfat(tmp_path / "card.img", base_files())
    exfat = Exfat(image)
    entry = exfat.find(CLIPS[1])
    exfat.buf[entry.offsets[1] + 24] ^= 0x01  # one bit of its size, the checksum left as it was
    exfat.save()

    result, doc = run_ingest(registered, image)

    check(result, doc, registered, stored=[CLIPS[0], CLIPS[2]], failed={CLIPS[1]: "checksum"}, skipped={"not_media": 1})


# -- folder cards (a mounted card): names that are not UTF-8 ----------------------------------------


def bytes_card(root: Path) -> dict[bytes, bytes]:
    """A real folder whose names are bytes the kernel keeps as they are."""
    files = {
        b"DCIM/100MEDIA/CLIP0001.MP4": clip(1),
        b"DCIM/100MEDIA/\xff\xfeclip.MP4": clip(2),
        b"DCIM/\xc0\xafodd/CLIP0003.MP4": clip(3),  # an overlong UTF-8 "/" in a folder's name
        b"DCIM/tab\tand\\back.MP4": clip(4),
        b"DCIM/\xe5\xbd\x95\xe5\x83\x8f.MP4": clip(5),  # 录像: valid UTF-8, shown as it is
    }
    base = os.fsencode(root)
    for rel, data in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


FOLDER_SHOWN = {
    b"DCIM/100MEDIA/CLIP0001.MP4": "DCIM/100MEDIA/CLIP0001.MP4",
    b"DCIM/100MEDIA/\xff\xfeclip.MP4": "DCIM/100MEDIA/\\xff\\xfeclip.MP4",
    b"DCIM/\xc0\xafodd/CLIP0003.MP4": "DCIM/\\xc0\\xafodd/CLIP0003.MP4",
    b"DCIM/tab\tand\\back.MP4": "DCIM/tab\\x09and\\\\back.MP4",
    b"DCIM/\xe5\xbd\x95\xe5\x83\x8f.MP4": "DCIM/录像.MP4",
}


def test_a_folder_card_with_names_that_are_not_utf8(registered: Path, tmp_path: Path) -> None:
    root = tmp_path / "card"
    files = bytes_card(root)

    result, doc = run_ingest(registered, root)

    items = check(result, doc, registered, stored=sorted(FOLDER_SHOWN.values()))
    from conftest import file_digests

    for raw, shown in FOLDER_SHOWN.items():
        assert items[shown]["size"] == len(files[raw])
        b3 = items[shown]["blake3"]
        assert file_digests(registered / "objects" / b3[:2] / b3)[0] == b3
    source = FolderSource(root)
    entries = {e.path: e for e in source.entries()}
    for raw, shown in FOLDER_SHOWN.items():
        parts = raw.split(b"/")
        if shown == raw.decode("utf-8", "replace"):
            assert entries[shown].original_name is None and entries[shown].name_note is None
        else:
            assert entries[shown].original_name == {"encoding": "posix", "parts": [p.hex() for p in parts]}
            assert entries[shown].name_note


def test_a_folder_card_counts_links_and_names_too_deep_folders(registered: Path, tmp_path: Path) -> None:
    root = tmp_path / "card"
    (root / "DCIM").mkdir(parents=True)
    (root / "DCIM" / "CLIP0001.MP4").write_bytes(clip(1))
    (root / "DCIM" / "link").symlink_to(root / "DCIM")  # a link to a folder: counted, never followed
    deep = root.joinpath(*["D"] * 70)
    deep.mkdir(parents=True)
    (deep / "CLIP0002.MP4").write_bytes(clip(2))

    result, doc = run_ingest(registered, root)

    too_deep = "/".join(["D"] * 65) + "/"
    check(result, doc, registered, stored=["DCIM/CLIP0001.MP4"], failed={too_deep: "deeper than 64"},
          skipped={"not_a_file": 1})  # fmt: skip


# -- the stop flag reaches into the walk ------------------------------------------------------------


def test_the_stop_flag_ends_the_card_walk_and_the_run(store: Path, tmp_path: Path) -> None:
    files = {f"DCIM/{n:03d}/CLIP{n:04d}.MP4": clip(n % 4) + bytes([n]) for n in range(40)}
    image = make_fat(32, tmp_path / "card.img", files)
    source = CardImageSource(image, TZ)
    try:
        assert len(list(source.entries())) == 40
        calls = 0

        def stop_soon() -> bool:
            nonlocal calls
            calls += 1
            return calls > 10

        assert 0 < len(list(source.entries(should_stop=stop_soon))) < 40
        ctx = open_context(store, actor="tester")
        try:
            calls = 0
            report = ingest(ctx, source, SERIAL, allow_unregistered=True, should_stop=stop_soon)
        finally:
            ctx.close()
    finally:
        source.close()
    assert report.stopped and report.status == "stopped" and report.items == []


# -- memory stays bounded: entries per folder, entries waiting over a deep tree ---------------------


@pytest.mark.parametrize("kind", ["exfat", "folder"])
def test_a_folder_with_too_many_entries_is_read_in_part_and_named(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limits are lowered here so that a small real card crosses them (the real ones are 65,536 and 2**18)."""
    files = {f"DCIM/CLIP{n:04d}.MP4": clip(n % 4) for n in range(8)}
    monkeypatch.setattr("avlog.ingest.cardfs.exfat.MAX_FOLDER_ENTRIES", 5)
    monkeypatch.setattr("avlog.ingest.sources.MAX_FOLDER_ENTRIES", 5)
    if kind == "exfat":
        source: CardImageSource | FolderSource = CardImageSource(make_exfat(tmp_path / "card.img", files), TZ)
    else:
        for path, data in files.items():
            (tmp_path / "card" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "card" / path).write_bytes(data)
        source = FolderSource(tmp_path / "card")
    try:
        entries = list(source.entries())
    finally:
        source.close()
    assert len([e for e in entries if e.error is None]) == 5
    (folder,) = [e for e in entries if e.error is not None]
    assert folder.path == "DCIM/" and "more than 5 entries" in folder.error


@pytest.mark.parametrize("kind", ["fat32", "folder"])
def test_a_deep_tree_of_full_folders_is_named_not_held(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"X/P{i}/Q{j}/F{k}.MP4": clip(k) for i in range(4) for j in range(4) for k in range(2)}
    monkeypatch.setattr("avlog.ingest.cardfs.base.MAX_WAITING", 6)
    if kind == "fat32":
        source: CardImageSource | FolderSource = CardImageSource(make_fat(32, tmp_path / "card.img", files), TZ)
    else:
        for path, data in files.items():
            (tmp_path / "card" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "card" / path).write_bytes(data)
        source = FolderSource(tmp_path / "card")
    try:
        entries = list(source.entries())
    finally:
        source.close()
    failed = {e.path: e.error for e in entries if e.error is not None}
    listed = {e.path for e in entries if e.error is None}
    assert failed and all("too many entries" in (reason or "") for reason in failed.values()), failed
    for path in files:  # every file is listed, or lies in a folder named as not read
        assert (path in listed) != any(path.startswith(folder) for folder in failed), path


def test_a_fragmented_file_is_read_whole_and_one_in_too_many_pieces_fails(
    registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = make_fat(16, tmp_path / "card.img", base_files())
    fat = Fat(image)
    entry = fat.find(CLIPS[0])
    chain = fat.chain(fat.cluster_of(entry))
    spare = next(c for c in range(fat.clusters + 1, 2, -1) if fat.fat_get(c) == 0)
    second = fat.cluster_offset(chain[1])
    fat.put(fat.cluster_offset(spare), bytes(fat.buf[second : second + fat.cluster_size]))
    fat.fat_set(chain[0], spare)  # its second cluster now lies far away: three pieces
    fat.fat_set(spare, chain[2])
    fat.fat_set(chain[1], 0)
    fat.save()
    assert Fat(image).content(Fat(image).find(CLIPS[0])) == clip(1)

    result, doc = run_ingest(registered, image)

    items = check(result, doc, registered, stored=CLIPS, skipped={"not_media": 1})
    assert items[CLIPS[0]]["sha256"] == hashlib.sha256(clip(1)).hexdigest()
    monkeypatch.setattr("avlog.ingest.cardfs.base.MAX_RUNS", 2)
    source = CardImageSource(image, TZ)
    try:
        entries = {e.path: e for e in source.entries()}
        with pytest.raises(OSError, match="more than 2 pieces"):
            source.open(entries[CLIPS[0]])
        with source.open(entries[CLIPS[1]]) as f:
            assert f.read() == clip(2)
    finally:
        source.close()


def test_a_mount_point_whose_name_is_not_utf8_is_shown_escaped(registered: Path, tmp_path: Path) -> None:
    """A card's label names its mount point (/media/USER/LABEL): the path avlog is given may not be text."""
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/CAM\xff\xfe"))
    (root / "DCIM").mkdir(parents=True)
    (root / "DCIM" / "CLIP0001.MP4").write_bytes(clip(1))

    result, doc = run_ingest(registered, root, "--clear-device")

    check(result, doc, registered, stored=["DCIM/CLIP0001.MP4"])
    assert doc["source"] == str(tmp_path) + "/CAM\\xff\\xfe" and doc["cleared"] == ["DCIM/CLIP0001.MP4"]
    assert not (root / "DCIM" / "CLIP0001.MP4").exists()
    missing = run_avlog(registered, "ingest", "--from", os.fsdecode(os.fsencode(tmp_path) + b"/\xffnone"),
                        "--device-serial", SERIAL)  # fmt: skip
    assert missing.returncode == 1 and error_line(missing.stderr).endswith("\\xffnone does not exist")
