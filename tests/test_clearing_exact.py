"""Clearing deletes exactly the entries that were read and proved, or nothing.

Every raw-card case compares the whole image before and after with the tests' own parser
(tests/cardcraft.py, not avlog's reader): the only bytes that may change are the first byte of each
slot of a cleared entry (to 0xE5), the FAT entries of its clusters (to free, in every copy) and the
FSInfo free count; every other directory entry and every other file stays as it was, and a clean card
still passes ``fsck.vfat -n``. Ambiguous or changed cards refuse with exit 4 and stay byte-identical.
Mounted (folder) cards are cleared by identity: a file or folder swapped after the read refuses all.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from avlog.context import open_context
from avlog.ingest.clearing import ClearRefused, clear_card
from avlog.ingest.pipeline import ingest
from avlog.ingest.report import IngestReport
from avlog.ingest.sources import CardImageSource, FolderSource, Source
from cardcraft import Fat, FatEntry, changed_offsets, clip, fsck_fat, make_fat, mtools
from conftest import TZ, catalog_rows, error_line, run_avlog
from test_hostile_cards import CLIPS, FOLDER_SHOWN, SERIAL, SETTINGS, base_files, bytes_card

SETTINGS_PATH = "CFG/SET.INI"


@pytest.fixture
def registered(store: Path) -> Path:
    done = run_avlog(store, "device", "register", SERIAL, "--custodian", "张三", "--unit", "一中队")
    assert done.returncode == 0, done.stderr
    return store


def clear_via_cli(store: Path, image: Path) -> tuple[int, dict[str, Any], str]:
    done = run_avlog(store, "ingest", "--from", str(image), "--device-serial", SERIAL, "--clear-device", "--yes",
                     "--json", timeout=120)  # fmt: skip
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def clear_actions(store: Path) -> list[str]:
    return [r["action"] for r in catalog_rows(store, "SELECT action FROM audit WHERE action LIKE 'device.clear%'")]


def assert_exactly_cleared(image: Path, before: bytes, cleared: list[FatEntry]) -> None:
    """The image changed only where clearing ``cleared`` must change it; everything else reads as before."""
    after = image.read_bytes()
    old = Fat(image)
    old.buf = bytearray(before)
    new = Fat(image)
    allowed: set[int] = set()
    freed: list[int] = []
    for entry in cleared:
        allowed.update(entry.slots)
        freed += old.chain(old.cluster_of(entry), math.ceil(entry.size / old.cluster_size))
    for cluster in freed:
        for copy in range(old.fats):
            allowed.update(old.fat_span(cluster, copy))
    if old.bits == 32:
        allowed.update(range(old.fsinfo * old.bps + 488, old.fsinfo * old.bps + 492))
    for offset in changed_offsets(before, after):
        assert offset in allowed, f"byte {offset} changed, which no cleared entry accounts for"
    for entry in cleared:
        for slot in entry.slots:
            assert after[slot] == 0xE5 and after[slot + 1 : slot + 32] == before[slot + 1 : slot + 32]
    for cluster in freed:
        for copy in range(old.fats):
            assert new.fat_get(cluster, copy) == 0
    gone = {e.offset for e in cleared}
    kept_before = {e.offset: (e.raw, old.content(e)) for e in old.walk() if e.offset not in gone}
    kept_after = {e.offset: (e.raw, new.content(e)) for e in new.walk()}
    assert kept_after == kept_before, "an entry that was not cleared changed or disappeared"


# -- through the CLI: hostile names are cleared exactly ---------------------------------------------


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_the_slash_attack_deletes_the_recording_and_never_the_settings_file(
    bits: int, registered: Path, tmp_path: Path
) -> None:
    image = make_fat(bits, tmp_path / "card.img", {**base_files(), "ROGUE.MP4": clip(4)})
    fat = Fat(image)
    rogue = fat.find("ROGUE.MP4")
    fat.set_short(rogue, b"CFG/SET INI")
    fat.save()
    before = image.read_bytes()
    settings = Fat(image).find(SETTINGS_PATH)
    cleared = [fat.find(p) for p in CLIPS] + [Fat(image).entries()[-1]]
    assert cleared[-1].short == b"CFG/SET INI"

    code, doc, stderr = clear_via_cli(registered, image)

    assert code == 0, stderr
    assert sorted(doc["cleared"]) == sorted([*CLIPS, "CFG\\x2fSET.INI"])
    assert_exactly_cleared(image, before, cleared)
    after = Fat(image)
    assert after.content(after.find(SETTINGS_PATH)) == SETTINGS
    assert after.find(SETTINGS_PATH).offset == settings.offset
    typed = mtools("mtype", "-i", str(image), "::/CFG/SET.INI")  # a second reader: mtools
    assert typed.returncode == 0 and typed.stdout.encode() == SETTINGS
    assert clear_actions(registered) == ["device.clear.start", "device.clear"]


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_a_clean_card_is_cleared_and_stays_consistent(bits: int, registered: Path, tmp_path: Path) -> None:
    image = make_fat(bits, tmp_path / "card.img", base_files())
    assert fsck_fat(image).returncode == 0
    before = image.read_bytes()
    fat = Fat(image)
    cleared = [fat.find(p) for p in CLIPS]

    code, doc, stderr = clear_via_cli(registered, image)

    assert code == 0, stderr
    assert sorted(doc["cleared"]) == sorted(CLIPS)
    assert_exactly_cleared(image, before, cleared)
    checked = fsck_fat(image)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "wrong" not in checked.stdout.lower(), checked.stdout
    listed = mtools("mdir", "-/", "-b", "-i", str(image), "::/")
    assert [p for p in listed.stdout.split() if not p.endswith("/")] == ["::/CFG/SET.INI"], listed.stdout


def test_hostile_names_are_cleared_by_location(registered: Path, tmp_path: Path) -> None:
    """Dot names, control characters, a NUL, bad UTF-16 and a long name that does not belong: all exact."""
    files = {**base_files(), "DOT.MP4": clip(4), "DOTDOT.MP4": clip(5), "CTRL.MP4": clip(6),
             "DCIM/100MEDIA/Long one.mp4": clip(7), "DCIM/100MEDIA/Long two.mp4": clip(8)}  # fmt: skip
    image = make_fat(32, tmp_path / "card.img", files)
    fat = Fat(image)
    fat.set_short(fat.find("DOT.MP4"), b".          ")
    fat.set_short(fat.find("DOTDOT.MP4"), b"..         ")
    fat.set_short(fat.find("CTRL.MP4"), b"C\x00\x1bL    MP4")
    fat.set_long(fat.find("DCIM/100MEDIA/Long one.mp4"), "bad".encode("utf-16-le") + b"\x00\xdc")
    mismatched = fat.find("DCIM/100MEDIA/Long two.mp4")
    for slot in mismatched.lfn:
        fat.buf[slot + 13] ^= 0xFF
    fat.save()
    before = image.read_bytes()
    parsed = Fat(image)
    cleared = [e for e in parsed.walk() if not e.attr & 0x18 and e.name != "SET.INI"]
    assert len(cleared) == 8
    for entry in cleared:
        if entry.offset == mismatched.offset:  # its long-name slots belong to no entry: they are not deleted
            entry.lfn = []

    code, doc, stderr = clear_via_cli(registered, image)

    assert code == 0, stderr
    assert len(doc["cleared"]) == 8
    assert {"\\x2e", "\\x2e\\x2e", "C\\x00\\x1bL.MP4", "DCIM/100MEDIA/bad\\udc00"} <= set(doc["cleared"])
    assert_exactly_cleared(image, before, cleared)


def test_a_file_with_the_volume_label_bit_stays_on_the_card(registered: Path, tmp_path: Path) -> None:
    image = make_fat(16, tmp_path / "card.img", base_files())
    fat = Fat(image)
    hidden = fat.find(CLIPS[1])
    fat.set_field(hidden, 11, hidden.attr | 0x08, 1)
    fat.save()
    before = image.read_bytes()

    code, doc, stderr = clear_via_cli(registered, image)

    assert code == 0, stderr
    assert doc["skipped"]["volume_label"] == 1
    assert sorted(doc["cleared"]) == [CLIPS[0], CLIPS[2]]
    assert_exactly_cleared(image, before, [fat.find(CLIPS[0]), fat.find(CLIPS[2])])


@pytest.mark.parametrize("where", ["file", "folder"])
def test_an_ambiguous_name_refuses_the_whole_clearing(where: str, registered: Path, tmp_path: Path) -> None:
    files = {**base_files(), "DCIM/100MEDIA/CLIP0004.MP4": clip(4), "DCIM2/CLIP0005.MP4": clip(5)}
    image = make_fat(32, tmp_path / "card.img", files)
    fat = Fat(image)
    if where == "file":  # two entries of one folder with one 8.3 name
        fat.set_short(fat.find("DCIM/100MEDIA/CLIP0004.MP4"), b"CLIP0001MP4")
    else:  # two folders named DCIM: every file below either is ambiguous
        fat.set_short(fat.find("DCIM2"), b"DCIM       ")
    fat.save()
    before = image.read_bytes()

    code, doc, stderr = clear_via_cli(registered, image)

    assert code == 4, stderr
    line = error_line(stderr)
    assert "nothing was deleted" in line and "shares its name" in line, line
    assert doc["cleared"] == [] and doc["failed"] == 0 and doc["stored"] == 5
    assert image.read_bytes() == before
    assert clear_actions(registered) == []


# -- in process: the card changes between the read and the clearing ---------------------------------


def ingest_then(store: Path, source: Source) -> tuple[Any, IngestReport]:
    ctx = open_context(store, actor="tester")
    report = ingest(ctx, source, SERIAL, allow_unregistered=True)
    assert report.failed == 0 and report.stored >= 1, [i.error for i in report.items]
    return ctx, report


def refused_after(store: Path, image: Path, change: Any) -> str:
    """Ingest, then ``change(Fat)`` the card, then clear: refused, and the card is as the change left it."""
    source = CardImageSource(image, TZ)
    ctx, report = ingest_then(store, source)
    try:
        fat = Fat(image)
        change(fat)
        fat.save()
        changed = image.read_bytes()
        with pytest.raises(ClearRefused) as refused:
            clear_card(ctx, source, report, confirmed=True)
        assert image.read_bytes() == changed
        assert [a for a in clear_actions(store) if a != "device.clear.failed"] in ([], ["device.clear.start"])
        return str(refused.value)
    finally:
        ctx.close()
        source.close()


def _touch_time(fat: Fat) -> None:
    entry = fat.find(CLIPS[0])
    fat.set_field(entry, 22, int.from_bytes(entry.raw[22:24], "little") ^ 0x20, 2)


def _longer_chain(fat: Fat) -> None:
    entry = fat.find(CLIPS[0])
    last = fat.chain(fat.cluster_of(entry))[-1]
    spare = next(c for c in range(fat.clusters + 1, 2, -1) if fat.fat_get(c) == 0)
    fat.fat_set(last, spare)
    fat.fat_set(spare, 0x0FFFFFFF)


def _content(fat: Fat) -> None:
    entry = fat.find(CLIPS[1])
    at = fat.cluster_offset(fat.cluster_of(entry)) + 100
    fat.buf[at] ^= 0xFF


def _fat_copies_disagree(fat: Fat) -> None:
    entry = fat.find(CLIPS[2])
    first = fat.cluster_of(entry)
    span = fat.fat_span(first, 1)
    fat.put(span.start, (fat.fat_get(first) + 7).to_bytes(4, "little"))


def _moved_data(fat: Fat) -> None:
    """The same entry and bytes, but its second cluster's data moved elsewhere: another chain than the one read."""
    entry = fat.find(CLIPS[0])
    chain = fat.chain(fat.cluster_of(entry))
    spare = next(c for c in range(fat.clusters + 1, 2, -1) if fat.fat_get(c) == 0)
    moved = fat.buf[fat.cluster_offset(chain[1]) : fat.cluster_offset(chain[1]) + fat.cluster_size]
    fat.put(fat.cluster_offset(spare), bytes(moved))
    fat.fat_set(chain[0], spare)
    fat.fat_set(spare, chain[2])
    fat.fat_set(chain[1], 0)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        (_touch_time, "changed on the card"),
        (_longer_chain, "goes on past"),
        (_content, "changed on the card"),
        (_fat_copies_disagree, "FAT copies disagree"),
        (_moved_data, "changed on the card"),
    ],
    ids=["entry-bytes", "chain-tail", "content", "fat-copies", "chain-moved"],
)
def test_a_card_changed_after_the_read_is_not_cleared(change: Any, word: str, store: Path, tmp_path: Path) -> None:
    image = make_fat(32, tmp_path / "card.img", base_files())
    reason = refused_after(store, image, change)
    assert "nothing was deleted" in reason and word in reason, reason


def test_clusters_shared_with_a_file_not_ingested_refuse(store: Path, tmp_path: Path) -> None:
    image = make_fat(32, tmp_path / "card.img", base_files())
    fat = Fat(image)
    clip_entry = fat.find(CLIPS[0])
    last = fat.chain(fat.cluster_of(clip_entry))[-1]
    settings = fat.find(SETTINGS_PATH)
    fat.set_cluster(settings, last)  # the settings file's one cluster is also the clip's last
    fat.save()
    reason = refused_after(store, image, lambda fat: None)
    assert "shares clusters" in reason, reason


def test_items_not_in_the_store_are_left_on_the_card(store: Path, tmp_path: Path) -> None:
    image = make_fat(32, tmp_path / "card.img", base_files())
    before = image.read_bytes()
    fat = Fat(image)
    source = CardImageSource(image, TZ)
    ctx, report = ingest_then(store, source)
    try:
        purged = next(i for i in report.items if i.original_path == CLIPS[1])
        purged.status = "rehandover"  # its clip was purged before: the card's copy is the only one
        done = clear_card(ctx, source, report, confirmed=True)
    finally:
        ctx.close()
        source.close()
    assert sorted(done.deleted) == [CLIPS[0], CLIPS[2]] and done.left == [CLIPS[1]]
    assert_exactly_cleared(image, before, [fat.find(CLIPS[0]), fat.find(CLIPS[2])])
    (entry,) = catalog_rows(store, "SELECT details FROM audit WHERE action = 'device.clear'")
    assert json.loads(entry["details"])["left"] == [CLIPS[1]]


# -- a mounted card: by identity, names as bytes ----------------------------------------------------


def tree(root: Path) -> dict[bytes, bytes]:
    base = os.fsencode(root)
    out = {}
    for folder, _dirs, files in os.walk(base):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, base)] = f.read()
    return out


def test_a_folder_card_is_cleared_by_the_bytes_of_its_names(registered: Path, tmp_path: Path) -> None:
    root = tmp_path / "card"
    files = bytes_card(root)
    (root / "CFG").mkdir()
    (root / "CFG" / "SET.INI").write_bytes(SETTINGS)

    done = run_avlog(registered, "ingest", "--from", str(root), "--device-serial", SERIAL, "--clear-device",
                     "--json", timeout=120)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["cleared"]) == sorted(FOLDER_SHOWN.values())
    assert tree(root) == {b"CFG/SET.INI": SETTINGS}
    for folder in (b"DCIM", b"DCIM/100MEDIA", b"DCIM/\xc0\xafodd"):
        assert os.path.isdir(os.path.join(os.fsencode(root), folder))  # folders stay; only the files go
    assert len(files) == len(FOLDER_SHOWN)


def _replace_file(root: Path) -> None:
    """The same name and bytes, but another file (another inode) than the one read."""
    target = os.path.join(os.fsencode(root), b"DCIM/100MEDIA/\xff\xfeclip.MP4")
    shutil.copyfile(target, target + b".new")
    os.replace(target + b".new", target)


def _swap_folder(root: Path) -> None:
    """DCIM becomes a link to a copy of itself: the path names the same files, the folders are others."""
    shutil.copytree(root / "DCIM", root / "ELSEWHERE", symlinks=True)
    shutil.rmtree(root / "DCIM")
    (root / "DCIM").symlink_to(root / "ELSEWHERE")


def _replace_folder(root: Path) -> None:
    """DCIM/100MEDIA becomes a new folder holding the same files (hard links): the folder is another one."""
    old = root / "DCIM" / "100MEDIA"
    new = root / "DCIM" / "100MEDIA.new"
    new.mkdir()
    for name in os.listdir(os.fsencode(old)):
        os.link(os.path.join(os.fsencode(old), name), os.path.join(os.fsencode(new), name))
    shutil.rmtree(old)
    new.rename(old)


@pytest.mark.parametrize("change", [_replace_file, _swap_folder, _replace_folder], ids=["file", "link", "folder"])
def test_a_folder_card_changed_after_the_read_is_not_cleared(change: Any, store: Path, tmp_path: Path) -> None:
    root = tmp_path / "card"
    bytes_card(root)
    source = FolderSource(root)
    ctx, report = ingest_then(store, source)
    try:
        change(root)
        before = tree(root)
        with pytest.raises(ClearRefused) as refused:
            clear_card(ctx, source, report, confirmed=True)
    finally:
        ctx.close()
    assert "nothing was deleted" in str(refused.value)
    assert tree(root) == before
    assert clear_actions(store) == []
