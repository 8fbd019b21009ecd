"""The demo card goes in whole, and a second run adds nothing."""

from __future__ import annotations

import json

from avlog.samples import SampleCard
from conftest import Cli, register


def test_demo_card_ingests_and_rerun_adds_nothing(cli: Cli, demo_card: SampleCard) -> None:
    register(cli)
    first = cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001", "--json")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["stored"] == len(demo_card.recordings) - len(demo_card.duplicate_of)
    assert doc["duplicates"] == len(demo_card.duplicate_of)
    assert doc["failed"] == 0
    again = json.loads(cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001", "--json").stdout)
    assert again["stored"] == 0
    assert again["duplicates"] == len(demo_card.recordings)
