"""Clearing a raw FAT card deletes exactly the ingested recordings, whatever their names."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avlog.ingest.sources import CardImageSource
from avlog.samples import write_video
from conftest import TZ, Cli, make_fat32_image, register


def test_names_that_look_like_patterns_are_deleted_exactly(cli: Cli, store: Path, tmp_path: Path) -> None:
    card = tmp_path / "card"
    start = datetime.now(UTC) - timedelta(hours=1)
    names = ["DCIM/A[12].MP4", "DCIM/A1.MP4", "DCIM/A2.MP4", "DCIM/[x]odd.MP4"]
    for n, name in enumerate(names):
        write_video(card / name, start=start + timedelta(seconds=10 * n), seconds=1)
    (card / "DCIM" / "A1.TXT").write_text("not a recording", encoding="ascii")
    image = make_fat32_image(card, tmp_path / "card.img")
    register(cli)

    result = cli("ingest", "--from", str(image), "--device-serial", "BC-0001", "--clear-device", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sorted(doc["cleared"]) == sorted(names)

    source = CardImageSource(image, TZ)
    try:
        left = sorted(e.path for e in source.entries())
    finally:
        source.close()
    assert left == ["DCIM/A1.TXT"]
    with sqlite3.connect(store / "catalog.sqlite") as conn:
        actions = [
            r[0] for r in conn.execute("SELECT action FROM audit WHERE action LIKE 'device.clear%' ORDER BY seq")
        ]
    assert actions == ["device.clear.start", "device.clear"]
