"""Packing clips onto discs: the bound against pycdlib's real layout, and the packing's promises."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avlog.iso.build import DiscFile, Image, Volume
from avlog.iso.media import FORMAT_SECTORS, MEDIA, SECTOR, Medium
from avlog.iso.plan import MAX_EXTENT, Item, disc_sectors, plan

WHEN = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def test_media_sizes_are_the_exact_sector_counts() -> None:
    assert FORMAT_SECTORS == {
        "CD-R": 359_849,
        "DVD+R": 2_295_104,
        "DVD-R": 2_298_496,
        "DVD+R DL": 4_173_824,
        "DVD-R DL": 4_171_712,
        "BD-R": 12_219_392,
        "BD-R DL": 24_438_784,
        "BDXL": 48_878_592,
    }
    # A name covering two formats packs for the smaller, so the image fits either.
    assert MEDIA["dvd"].sectors == min(FORMAT_SECTORS["DVD+R"], FORMAT_SECTORS["DVD-R"])
    assert MEDIA["dvd-dl"].sectors == min(FORMAT_SECTORS["DVD+R DL"], FORMAT_SECTORS["DVD-R DL"])
    assert MEDIA["bd25"].bytes == 12_219_392 * 2048


def _sparse_tree(root: Path, files: list[tuple[str, int]]) -> list[DiscFile]:
    """Real (sparse) files of the given sizes: pycdlib lays them out without reading them."""
    result = []
    for path, size in files:
        source = root / path
        source.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "wb") as f:
            f.truncate(size)
        result.append(DiscFile(path, size, WHEN, source=source))
    return result


def _exact_sectors(root: Path, files: list[tuple[str, int]]) -> int:
    image = Image(Volume("AVLOG_2026_0001", "AVLOG_TEST", "org", "tester", "AVLOG", WHEN), _sparse_tree(root, files))
    try:
        return image.sectors
    finally:
        image.close()


def _random_files(rng: random.Random, count: int, *, big: bool = False) -> list[tuple[str, int]]:
    files = []
    for n in range(count):
        device = f"BC-{rng.randrange(6):04d}"
        day = f"2026-11-{rng.randrange(1, 29):02d}"
        name = rng.choice(["FILE{:04d}.MP4", "20261120_083000_{:04d}.MP4", "录像 {:04d} (现场).mp4", "a{:04d}"])
        size = rng.choice([0, 1, 2047, 2048, 2049, rng.randrange(1, 50_000_000)])
        if big and n == 0:
            size = MAX_EXTENT * 2 + 12345  # three ISO 9660 extents
        files.append((f"data/{device}/{day}/{name.format(n)}", size))
    files += [("bagit.txt", 55), ("bag-info.txt", 600), ("manifest-sha256.txt", 120 * count)]
    files.append(("data/catalog.json", 900))
    return files


@pytest.mark.parametrize("count,seed", [(0, 1), (1, 2), (40, 3), (400, 4), (1500, 5)])
def test_the_bound_is_never_below_pycdlibs_layout_and_close_to_it(tmp_path: Path, count: int, seed: int) -> None:
    files = _random_files(random.Random(seed), count, big=count == 40)
    exact = _exact_sectors(tmp_path, files)
    bound = disc_sectors(files)
    assert bound >= exact
    # Close: the structures' bound costs little next to any real disc (0.05 % of a CD-R per 100 files).
    assert bound - exact <= 400 + 3 * count, (bound, exact)


def test_one_directory_with_thousands_of_long_names(tmp_path: Path) -> None:
    files = [(f"data/BC-0001/2026-11-20/{'录' * 18}{n:05d}.MP4", 5000) for n in range(3000)]
    assert disc_sectors(files) >= _exact_sectors(tmp_path, files)


def _items(sizes: list[int], groups: int) -> list[Item]:
    return [
        Item(n, size, f"data/BC-{n % 7:04d}/2026-11-{n % 28 + 1:02d}/F{n:05d}.MP4", f"g{n % groups}", f"{n:06d}", 400)
        for n, size in enumerate(sizes)
    ]


TINY = Medium("tiny", 20_000, "a test medium of 40 MB")


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=TINY.bytes), min_size=0, max_size=60),
    groups=st.integers(min_value=1, max_value=8),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_packing_overfills_no_disc_and_places_every_clip_once(sizes: list[int], groups: int) -> None:
    items = _items(sizes, groups)
    result = plan(items, TINY)
    placed = [i.clip_id for d in result.discs for i in d.items]
    refused = [t.item.clip_id for t in result.too_big]
    assert sorted(placed + refused) == list(range(len(items)))  # every clip exactly once
    for disc in result.discs:
        assert disc.items
        assert disc.sectors <= TINY.sectors  # never overfull by the bound (which pycdlib's layout never exceeds)
        assert disc.sectors >= disc_sectors([(i.path, i.size) for i in disc.items])  # the bag's files included
    for t in result.too_big:
        assert t.item.size > TINY.bytes - 400 * SECTOR  # ... and only what cannot fit is refused


@given(sizes=st.lists(st.integers(min_value=1, max_value=TINY.bytes // 3), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_packing_is_tight(sizes: list[int]) -> None:
    """First fit decreasing: never more than 11/9 of the optimum plus one disc; lower bound = total / capacity."""
    items = _items(sizes, groups=len(sizes))  # every clip its own group: pure packing
    result = plan(items, TINY)
    usable = TINY.sectors - disc_sectors([("tags", 64 * 1024)] + [(f"tag{n}", 0) for n in range(8)])
    lower = -(-sum(-(-s // SECTOR) for s in sizes) // usable)
    assert len(result.discs) <= 11 * lower // 9 + 2


def test_a_group_stays_on_one_disc_where_it_fits() -> None:
    mb = 1_000_000
    items = [
        Item(1, 15 * mb, "data/A/d/1.MP4", "case:C-1", "1"),
        Item(2, 15 * mb, "data/B/d/2.MP4", "loose-2", "2"),
        Item(3, 15 * mb, "data/A/d/3.MP4", "case:C-1", "3"),
        Item(4, 15 * mb, "data/B/d/4.MP4", "loose-4", "4"),
    ]
    result = plan(items, TINY)
    where = {i.clip_id: n for n, d in enumerate(result.discs) for i in d.items}
    assert where[1] == where[3]  # the case's two clips together (30 MB of a 40 MB disc)
    assert len(result.discs) == 2


def test_a_clip_larger_than_the_medium_is_refused_naming_one_it_fits_on() -> None:
    items = [Item(1, 800_000_000, "data/A/d/big.MP4", "g", "1"), Item(2, 1000, "data/A/d/small.MP4", "g", "2")]
    result = plan(items, MEDIA["cd"])
    assert [t.item.clip_id for t in result.too_big] == [1]
    fits_on = result.too_big[0].fits_on
    assert fits_on is not None and fits_on.name == "dvd"
    assert [i.clip_id for d in result.discs for i in d.items] == [2]
    huge = plan([Item(1, MEDIA["bd100"].bytes, "data/x", "g", "1")], MEDIA["cd"])
    assert huge.too_big[0].fits_on is None


def test_a_group_larger_than_a_disc_spans_as_few_discs_as_packing_allows() -> None:
    mb = 1_000_000
    items = [Item(n, 12 * mb, f"data/A/d/{n}.MP4", "case:big", f"{n:03d}") for n in range(9)]  # 108 MB
    result = plan(items, TINY)
    assert len(result.discs) == 3  # three 12 MB clips per 40 MB disc
    assert sorted(i.clip_id for d in result.discs for i in d.items) == list(range(9))
