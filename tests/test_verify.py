"""Fixity through the CLI: `avlog verify` re-hashes objects, lists every bad one, records what it found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import blake3
import pytest

from avlog.samples import SampleCard
from conftest import Cli, register
from conftest import catalog_rows as query


@pytest.fixture
def ingested(cli: Cli, demo_card: SampleCard) -> SampleCard:
    register(cli)
    result = cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    return demo_card


def distinct_contents(card: SampleCard) -> set[str]:
    """BLAKE3 of every recording on the card, computed here from the card's bytes."""
    return {blake3.blake3((card.root / rel).read_bytes()).hexdigest() for rel in card.recordings}


def object_path(store: Path, hexdigest: str) -> Path:
    return store / "objects" / hexdigest[:2] / hexdigest


def flip_one_byte(path: Path) -> None:
    mode = path.stat().st_mode
    os.chmod(path, mode | 0o200)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 3)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x80]))
    os.chmod(path, mode)


def clip_ids(store: Path, hexdigest: str) -> list[int]:
    return [r["id"] for r in query(store, "SELECT id FROM clips WHERE blake3 = ? ORDER BY id", [hexdigest])]


def test_sound_store_verifies(cli: Cli, store: Path, ingested: SampleCard) -> None:
    contents = distinct_contents(ingested)
    assert len(contents) == len(ingested.recordings) - len(ingested.duplicate_of)

    result = cli("verify", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["checked"] == len(contents)
    assert doc["ok"] == doc["checked"]
    assert doc["bad"] == []
    assert {r["blake3"] for r in query(store, "SELECT blake3 FROM objects")} == contents

    plain = cli("verify")
    assert plain.exit_code == 0, plain.stderr
    assert "Traceback" not in plain.stderr


def test_flipped_byte_and_missing_object_are_both_listed(cli: Cli, store: Path, ingested: SampleCard) -> None:
    contents = sorted(distinct_contents(ingested))
    altered, deleted = contents[0], contents[-1]

    flip_one_byte(object_path(store, altered))
    assert oct(object_path(store, altered).stat().st_mode & 0o777) == oct(0o444)

    result = cli("verify")
    assert result.exit_code == 3
    assert altered in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(cli("verify", "--json").stdout)
    assert doc["checked"] == len(contents)
    assert doc["ok"] == len(contents) - 1
    assert [{k: b[k] for k in ("blake3", "problem")} for b in doc["bad"]] == [
        {"blake3": altered, "problem": "mismatch"}
    ]
    assert doc["bad"][0]["clips"] == clip_ids(store, altered)

    object_path(store, deleted).unlink()
    result = cli("verify")
    assert result.exit_code == 3
    both = result.stdout + result.stderr
    assert altered in both
    assert deleted in both
    with_json = cli("verify", "--json")
    assert with_json.exit_code == 3
    doc = json.loads(with_json.stdout)
    assert doc["checked"] == len(contents)
    assert doc["ok"] == len(contents) - 2
    problems = {b["blake3"]: b["problem"] for b in doc["bad"]}
    assert problems == {altered: "mismatch", deleted: "missing"}
    for b in doc["bad"]:
        assert b["clips"] == clip_ids(store, b["blake3"])
        assert b["clips"]


def test_verify_records_results_and_an_audit_entry(cli: Cli, store: Path, ingested: SampleCard) -> None:
    contents = sorted(distinct_contents(ingested))
    altered, deleted = contents[1], contents[2]
    assert query(store, "SELECT * FROM objects WHERE last_verified_at IS NOT NULL") == []
    audits_before = query(store, "SELECT seq FROM audit WHERE action = 'store.verify'")
    assert audits_before == []

    flip_one_byte(object_path(store, altered))
    object_path(store, deleted).unlink()
    assert cli("verify").exit_code == 3

    results = {r["blake3"]: r for r in query(store, "SELECT * FROM objects")}
    assert set(results) == set(contents)
    for hexdigest, row in results.items():
        assert row["last_verified_at"] is not None
        want = {altered: "mismatch", deleted: "missing"}.get(hexdigest, "ok")
        assert row["last_verify_result"] == want, hexdigest

    entries = query(store, "SELECT * FROM audit WHERE action = 'store.verify'")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["subject"] == "store"
    assert entry["actor"] == "tester"
    assert entry["at"] == results[altered]["last_verified_at"]
    details = json.loads(entry["details"])
    assert details["checked"] == len(contents)
    assert details["ok"] == len(contents) - 2
    assert {b["blake3"]: b["problem"] for b in details["bad"]} == {altered: "mismatch", deleted: "missing"}


def test_sample_checks_exactly_n(cli: Cli, store: Path, ingested: SampleCard) -> None:
    contents = distinct_contents(ingested)
    assert len(contents) > 2
    result = cli("verify", "--sample", "2", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["checked"] == 2
    assert doc["ok"] == 2
    assert doc["bad"] == []
    assert doc["sampled"] is True
    verified = query(store, "SELECT blake3 FROM objects WHERE last_verified_at IS NOT NULL")
    assert len(verified) == 2
    assert {r["blake3"] for r in verified} <= contents
    (entry,) = query(store, "SELECT details FROM audit WHERE action = 'store.verify'")
    assert json.loads(entry["details"])["sample"] == 2


def test_sample_finds_damage_in_what_it_checks(cli: Cli, store: Path, ingested: SampleCard) -> None:
    """With every object damaged, any sample of 2 must report 2 bad ones."""
    for hexdigest in distinct_contents(ingested):
        object_path(store, hexdigest).unlink()
    result = cli("verify", "--sample", "2", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["checked"] == 2
    assert [b["problem"] for b in doc["bad"]] == ["missing", "missing"]


@pytest.mark.parametrize("args", [["--all", "--sample", "2"], ["--sample", "0"], ["--sample", "x"]])
def test_bad_verify_options_are_usage_errors(cli: Cli, store: Path, ingested: SampleCard, args: list[str]) -> None:
    result = cli("verify", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    # A refused command checks nothing and records nothing.
    assert query(store, "SELECT * FROM objects WHERE last_verified_at IS NOT NULL") == []
    assert query(store, "SELECT * FROM audit WHERE action = 'store.verify'") == []


def test_all_is_the_default(cli: Cli, ingested: SampleCard) -> None:
    result = cli("verify", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["checked"] == len(distinct_contents(ingested))


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_reingesting_the_card_repairs_what_verify_found(
    cli: Cli, store: Path, ingested: SampleCard, damage: str
) -> None:
    victim = sorted(distinct_contents(ingested))[0]
    path = object_path(store, victim)
    clips_before = query(store, "SELECT id, blake3, original_path FROM clips ORDER BY id")
    if damage == "flip":
        flip_one_byte(path)
    else:
        path.unlink()
    assert cli("verify").exit_code == 3
    again = cli("ingest", "--from", str(ingested.root), "--device-serial", "BC-0001", "--json")
    assert again.exit_code == 0, again.stderr
    doc = json.loads(again.stdout)
    assert [c["status"] for c in doc["clips"] if c["blake3"] == victim][0] == "stored"
    assert blake3.blake3(path.read_bytes()).hexdigest() == victim
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert cli("verify").exit_code == 0
    repairs = query(store, "SELECT subject FROM audit WHERE action = 'object.repair'")
    assert repairs == [{"subject": f"object:{victim}"}]
    # The repair restores the bytes; the catalog's clips stay exactly as they were.
    assert query(store, "SELECT id, blake3, original_path FROM clips ORDER BY id") == clips_before


def test_a_cut_object_is_repaired_by_the_next_ingest_even_before_verify(
    cli: Cli, store: Path, ingested: SampleCard
) -> None:
    victim = sorted(distinct_contents(ingested))[-1]
    path = object_path(store, victim)
    mode = path.stat().st_mode
    os.chmod(path, mode | 0o200)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    os.chmod(path, mode)
    again = cli("ingest", "--from", str(ingested.root), "--device-serial", "BC-0001", "--json")
    assert again.exit_code == 0, again.stderr
    assert blake3.blake3(path.read_bytes()).hexdigest() == victim
    assert query(store, "SELECT subject FROM audit WHERE action = 'object.repair'") == [{"subject": f"object:{victim}"}]
    assert query(store, "SELECT last_verify_result FROM objects WHERE blake3 = ?", [victim]) == [
        {"last_verify_result": "repaired"}
    ]


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_a_content_held_twice_on_the_card_is_repaired_once(
    cli: Cli, store: Path, ingested: SampleCard, damage: str
) -> None:
    """The card holds one recording twice (a copied file): both files are read, one proven copy replaces the
    damaged object, and the log records one repair."""
    by_content: dict[str, list[str]] = {}
    for rel in ingested.recordings:
        by_content.setdefault(blake3.blake3((ingested.root / rel).read_bytes()).hexdigest(), []).append(rel)
    (victim,) = [h for h, files in by_content.items() if len(files) == 2]
    path = object_path(store, victim)
    if damage == "flip":
        flip_one_byte(path)
    else:
        path.unlink()
    assert cli("verify").exit_code == 3
    again = cli("ingest", "--from", str(ingested.root), "--device-serial", "BC-0001", "--json")
    assert again.exit_code == 0, again.stderr
    assert blake3.blake3(path.read_bytes()).hexdigest() == victim
    assert query(store, "SELECT subject FROM audit WHERE action = 'object.repair'") == [{"subject": f"object:{victim}"}]
    assert cli("verify").exit_code == 0
