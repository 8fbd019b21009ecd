"""retention-sweep end to end: real clips recorded in the past, real objects, time moved by the clock."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

from avlog.context import open_context
from avlog.retention.sweep import SweepReport, sweep
from avlog.samples import write_video
from conftest import Cli, register, run_avlog
from conftest import catalog_rows as rows

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def make_card(root: Path) -> dict[str, Path]:
    """A (400 days old, clock reset), B and its copy B2 (same bytes), C, D, E (200 days), R (10 days)."""
    files = {
        "A": write_video(root / "A.mp4", start=NOW - 400 * DAY, seconds=1),
        "B": write_video(root / "B.mp4", start=NOW - 200 * DAY, seconds=1),
        "C": write_video(root / "C.mp4", start=NOW - 200 * DAY + timedelta(minutes=5), seconds=1),
        "D": write_video(root / "D.mp4", start=NOW - 200 * DAY + timedelta(minutes=10), seconds=1),
        "E": write_video(root / "E.mp4", start=NOW - 200 * DAY + timedelta(minutes=15), seconds=1),
        "R": write_video(root / "R.mp4", start=NOW - 10 * DAY, seconds=1),
    }
    files["B2"] = root / "copy" / "B-copy.mp4"
    files["B2"].parent.mkdir()
    shutil.copyfile(files["B"], files["B2"])
    return files


@pytest.fixture
def clips(cli: Cli, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The card ingested through the CLI; each clip with its id and the hashes of its source bytes."""
    files = make_card(tmp_path / "card")
    register(cli)
    result = cli("ingest", "--from", str(tmp_path / "card"), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    by_path = {c["original_path"]: c for c in json.loads(result.stdout)["clips"]}
    out = {}
    for name, path in files.items():
        data = path.read_bytes()
        rel = path.relative_to(tmp_path / "card").as_posix()
        entry = by_path[rel]
        out[name] = {
            "id": entry["clip_id"],
            "blake3": blake3.blake3(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        assert entry["blake3"] == out[name]["blake3"]
    assert out["B"]["blake3"] == out["B2"]["blake3"] and out["B"]["id"] != out["B2"]["id"]
    return out


def sweep_at(store: Path, at: datetime, **kwargs: Any) -> SweepReport:
    ctx = open_context(store, actor="sweeper", clock=lambda: at)
    try:
        return sweep(ctx, dry_run=kwargs.pop("dry_run", False), **kwargs)
    finally:
        ctx.close()


def clip(store: Path, clip_id: int) -> dict[str, Any]:
    (row,) = rows(store, "SELECT * FROM clips WHERE id = ?", [clip_id])
    return row


def audit(store: Path, action: str) -> list[dict[str, Any]]:
    found = rows(store, "SELECT subject, details FROM audit WHERE action = ? ORDER BY seq", [action])
    return [{"subject": r["subject"], "details": json.loads(r["details"])} for r in found]


def object_path(store: Path, hexdigest: str) -> Path:
    return store / "objects" / hexdigest[:2] / hexdigest


def snapshot(store: Path) -> tuple[list[dict[str, Any]], list[tuple[str, int]], int]:
    objects = sorted((p.name, p.stat().st_size) for p in (store / "objects").rglob("*") if p.is_file())
    (count,) = rows(store, "SELECT COUNT(*) AS n FROM audit")
    return rows(store, "SELECT * FROM clips ORDER BY id"), objects, count["n"]


def ids(clips: dict[str, dict[str, Any]], *names: str) -> set[int]:
    return {clips[n]["id"] for n in names}


def test_dry_run_changes_nothing(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    before = snapshot(store)
    report = sweep_at(store, NOW, dry_run=True)
    # Released 17 days ago but never seen due: a first sweep only marks them due.
    assert {row["id"] for row, _due in report.due} == ids(clips, "B", "B2", "C", "D", "E")
    assert report.purged == [] and report.kept == {"minimum_retention": 2}
    result = cli("retention-sweep", "--dry-run", "--as-of", (NOW + 8 * DAY).date().isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert {c["id"] for c in doc["purged"]} == ids(clips, "B", "B2", "C", "D", "E")
    assert doc["freed_bytes"] == sum(clips[n]["size"] for n in ("B", "C", "D", "E"))  # B2 shares B's bytes
    assert doc["kept"] == {"minimum_retention": 2} and doc["problems"] == []
    assert len(result.stderr.strip().splitlines()) == 1 and "dry run" in result.stderr
    assert snapshot(store) == before
    assert cli("retention-sweep", "--as-of", "2030-01-01").exit_code == 2  # --as-of only with --dry-run
    assert snapshot(store) == before


def test_due_rescue_purge_and_shared_content(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    released = ids(clips, "B", "B2", "C", "D", "E")
    first = sweep_at(store, NOW)
    assert set(first.newly_due) == released and first.purged == []
    assert {clip(store, i)["due_since"] is not None for i in released} == {True}
    assert {e["subject"] for e in audit(store, "clip.due")} == {f"clip:{i}" for i in released}

    # During the grace period a flag, a case and a hold each rescue a due clip.
    assert cli("flag", str(clips["C"]["id"]), "--reason", "dispute").exit_code == 0
    assert cli("case", "add", "2026-001", "--retain-years", "5").exit_code == 0
    assert cli("case", "link", "2026-001", str(clips["D"]["id"])).exit_code == 0
    assert cli("hold", "add", str(clips["E"]["id"]), "--reason", "complaint").exit_code == 0
    hold = json.loads(cli("hold", "add", str(clips["B2"]["id"]), "--reason", "litigation", "--json").stdout)
    second = sweep_at(store, NOW + 3 * DAY)
    assert set(second.rescued) == ids(clips, "C", "D", "E", "B2")
    assert second.kept == {"flagged_not_on_discs": 1, "case_open": 1, "hold": 2, "minimum_retention": 2}
    for name in ("C", "D", "E", "B2"):
        assert clip(store, clips[name]["id"])["due_since"] is None
    assert {e["subject"] for e in audit(store, "clip.rescued")} == {
        f"clip:{i}" for i in ids(clips, "C", "D", "E", "B2")
    }

    # After the grace period only B goes; its bytes stay, B2 still needs them.
    third = sweep_at(store, NOW + 8 * DAY)
    assert [r["id"] for r in third.purged] == [clips["B"]["id"]]
    assert third.freed_bytes == 0 and third.problems == []
    assert object_path(store, clips["B"]["blake3"]).is_file()
    tomb = clip(store, clips["B"]["id"])
    assert tomb["state"] == "purged" and tomb["purged_at"] and tomb["purge_reason"]
    assert (tomb["blake3"], tomb["sha256"], tomb["size"]) == tuple(clips["B"][k] for k in ("blake3", "sha256", "size"))
    (entry,) = audit(store, "clip.purge")
    assert entry["subject"] == f"clip:{clips['B']['id']}"
    assert {k: entry["details"][k] for k in ("blake3", "sha256", "size")} == {
        k: clips["B"][k] for k in ("blake3", "sha256", "size")
    }

    # Released from its hold, B2 becomes due again, with a fresh grace period, then goes and takes the bytes.
    assert cli("hold", "release", str(hold["hold"]), "--note", "judgment final").exit_code == 0
    fourth = sweep_at(store, NOW + 9 * DAY)
    assert fourth.newly_due == [clips["B2"]["id"]] and fourth.purged == []
    fifth = sweep_at(store, NOW + 16 * DAY)
    assert [r["id"] for r in fifth.purged] == [clips["B2"]["id"]]
    assert fifth.freed_bytes == clips["B"]["size"] and fifth.removed_objects == [clips["B"]["blake3"]]
    assert not object_path(store, clips["B"]["blake3"]).exists()
    for name in ("A", "C", "D", "E", "R"):
        assert object_path(store, clips[name]["blake3"]).is_file()
        assert clip(store, clips[name]["id"])["state"] == "stored"
    sweeps = audit(store, "retention.sweep")
    assert len(sweeps) == 5 and sweeps[-1]["details"]["purged"] == 1

    # A was dated 400 days back (a reset clock): its minimum counts from the ingest, not the recording.
    assert fifth.kept["minimum_retention"] == 2
    assert clips["A"]["id"] not in {r["id"] for r, _d in sweep_at(store, NOW + 182 * DAY, dry_run=True).due}
    late = sweep_at(store, NOW + 185 * DAY, dry_run=True)
    assert clips["A"]["id"] in {r["id"] for r, _d in late.due}


def test_missing_or_damaged_object_is_a_problem_not_a_tombstone(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]]
) -> None:
    sweep_at(store, NOW - 8 * DAY)  # B, B2, C, D, E became due eight days ago
    object_path(store, clips["C"]["blake3"]).unlink()
    damaged = object_path(store, clips["D"]["blake3"])
    damaged.chmod(0o644)
    damaged.write_bytes(b"x" * clips["D"]["size"])
    result = cli("retention-sweep", "--json")
    assert result.exit_code == 3, result.stderr
    doc = json.loads(result.stdout)
    assert {(p["id"], p["problem"]) for p in doc["problems"]} == {
        (clips["C"]["id"], "missing"),
        (clips["D"]["id"], "mismatch"),
    }
    assert {c["id"] for c in doc["purged"]} == ids(clips, "B", "B2", "E")
    assert all(c["state"] == "purged" for c in doc["purged"])
    assert doc["freed_bytes"] == clips["B"]["size"] + clips["E"]["size"]
    for name in ("C", "D"):
        row = clip(store, clips[name]["id"])
        assert row["state"] == "stored" and row["purged_at"] is None
    assert {e["subject"] for e in audit(store, "clip.purge")} == {f"clip:{i}" for i in ids(clips, "B", "B2", "E")}
    assert "avlog verify" in result.stderr.strip().splitlines()[-1]


def test_a_second_sweep_is_refused_while_one_runs(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    sweep_at(store, NOW - 8 * DAY)
    before = snapshot(store)
    (store / "tmp").mkdir(exist_ok=True)
    with open(store / "tmp" / "retention.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_avlog(store, "retention-sweep")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "running" in result.stderr
    assert snapshot(store) == before
    after = run_avlog(store, "retention-sweep", "--quiet")  # the lock is free again
    assert after.returncode == 0, after.stderr
    assert after.stderr == ""
    assert {r["id"] for r in rows(store, "SELECT id FROM clips WHERE state = 'purged'")} == ids(
        clips, "B", "B2", "C", "D", "E"
    )


def test_a_policy_below_six_months_is_refused(cli: Cli, store: Path) -> None:
    settings = store / "avlog.toml"
    text = settings.read_text()
    assert "min_days = 183" in text
    settings.write_text(text.replace("min_days = 183", "min_days = 90"))
    result = cli("retention-sweep", "--dry-run")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Art. 19" in result.stderr


def test_sigkill_mid_sweep_then_rerun_converges(cli: Cli, store: Path, tmp_path: Path) -> None:
    card = tmp_path / "many"
    for n in range(40):
        write_video(card / f"{n:03d}.mp4", start=NOW - 200 * DAY + n * timedelta(minutes=1), seconds=0.5)
    shutil.copyfile(card / "000.mp4", card / "000-copy.mp4")  # shared content
    register(cli)
    assert cli("ingest", "--from", str(card), "--device-serial", "BC-0001").exit_code == 0
    sweep_at(store, NOW - 8 * DAY)
    total = len(rows(store, "SELECT id FROM clips"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "avlog", "--store", str(store), "retention-sweep", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if rows(store, "SELECT COUNT(*) AS n FROM clips WHERE state = 'purged'")[0]["n"] > 0:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def consistent() -> list[dict[str, Any]]:
        purged_subjects = {e["subject"] for e in audit(store, "clip.purge")}
        stored_hashes = {r["blake3"] for r in rows(store, "SELECT blake3 FROM clips WHERE state = 'stored'")}
        all_rows = rows(store, "SELECT * FROM clips ORDER BY id")
        for row in all_rows:
            if row["state"] == "stored":
                assert object_path(store, row["blake3"]).is_file() and row["purged_at"] is None
            else:
                assert row["state"] == "purged" and row["purged_at"] and row["purge_reason"]
                assert f"clip:{row['id']}" in purged_subjects
        assert len(purged_subjects) == sum(r["state"] == "purged" for r in all_rows)
        return [r for r in all_rows if r["state"] == "purged" and r["blake3"] not in stored_hashes]

    consistent()  # whatever the moment of the kill: intact or tombstoned, never half of it
    rerun = run_avlog(store, "retention-sweep", "--json")
    assert rerun.returncode == 0, rerun.stderr
    gone = consistent()
    assert len(gone) == total
    for row in gone:
        assert not object_path(store, row["blake3"]).exists()
    assert not [p for p in (store / "objects").rglob("*") if p.is_file()]


def test_a_preview_counts_grace_from_the_first_sweep_that_can_still_run(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]]
) -> None:
    # Released long ago but never marked due: tonight's sweep marks them, so three days on none is purged yet.
    soon = cli("retention-sweep", "--dry-run", "--as-of", (datetime.now(UTC) + 3 * DAY).date().isoformat(), "--json")
    assert soon.exit_code == 0, soon.stderr
    doc = json.loads(soon.stdout)
    assert doc["purged"] == [] and {d["id"] for d in doc["due"]} == ids(clips, "B", "B2", "C", "D", "E")


def test_a_purged_clip_takes_no_new_marks(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    sweep_at(store, datetime.now(UTC))
    sweep_at(store, datetime.now(UTC) + 8 * DAY)
    victim = str(clips["C"]["id"])
    assert clip(store, clips["C"]["id"])["state"] == "purged"
    for args in (["flag", victim, "--reason", "dispute"], ["hold", "add", victim, "--reason", "late"]):
        refused = cli(*args)
        assert refused.exit_code == 1 and "only its tombstone remains" in refused.stderr


def test_a_recording_handed_over_again_after_its_purge_is_recorded_not_stored(
    cli: Cli, store: Path, tmp_path: Path, clips: dict[str, dict[str, Any]]
) -> None:
    """The card still holds B, C, D and E after they were purged: handing it over again records a re-handover
    linked to each tombstone, stores nothing again, and leaves nothing for the next sweep to purge twice."""
    sweep_at(store, NOW)
    purged = sweep_at(store, NOW + 8 * DAY)
    gone = ids(clips, "B", "B2", "C", "D", "E")
    assert {c["id"] for c in purged.purged} == gone
    objects_before = sorted(p.name for p in (store / "objects").rglob("*") if p.is_file())

    again = cli("ingest", "--from", str(tmp_path / "card"), "--device-serial", "BC-0001", "--json")
    assert again.exit_code == 0, again.stderr
    doc = json.loads(again.stdout)
    status = {c["original_path"]: (c["status"], c["clip_id"]) for c in doc["clips"]}
    assert {p: s for p, (s, _i) in status.items()} == {
        "A.mp4": "duplicate",
        "R.mp4": "duplicate",
        "B.mp4": "rehandover",
        "C.mp4": "rehandover",
        "D.mp4": "rehandover",
        "E.mp4": "rehandover",
        "copy/B-copy.mp4": "rehandover",
    }
    assert {i for s, i in status.values() if s == "rehandover"} == gone  # linked to the tombstones
    assert (doc["stored"], doc["rehandovers"], doc["failed"]) == (0, 5, 0)
    assert sorted(p.name for p in (store / "objects").rglob("*") if p.is_file()) == objects_before
    entries = audit(store, "clip.rehandover")
    assert {e["subject"] for e in entries} == {f"clip:{i}" for i in gone}
    assert {e["details"]["ingest"] for e in entries} == {doc["ingest_id"]}
    for i in gone:
        assert clip(store, i)["state"] == "purged"
    later = sweep_at(store, NOW + 9 * DAY)
    assert later.purged == [] and later.removed_objects == []
    shown = cli("ingest", "--from", str(tmp_path / "card"), "--device-serial", "BC-0001")
    assert shown.exit_code == 0 and "handed over again" in shown.stdout
    # Clearing deletes what the store holds and leaves the re-handed-over files, naming them.
    cleared = cli("ingest", "--from", str(tmp_path / "card"), "--device-serial", "BC-0001", "--clear-device", "--json")
    assert cleared.exit_code == 0, cleared.stderr
    doc = json.loads(cleared.stdout)
    assert sorted(doc["cleared"]) == ["A.mp4", "R.mp4"]
    assert sorted(doc["left_on_card"]) == ["B.mp4", "C.mp4", "D.mp4", "E.mp4", "copy/B-copy.mp4"]
    assert sorted(p.relative_to(tmp_path / "card").as_posix() for p in (tmp_path / "card").rglob("*.mp4")) == sorted(
        doc["left_on_card"]
    )
    assert run_avlog(store, "audit", "verify").returncode == 0
