"""`avlog ls` and `avlog show` report each clip's retention: state, retention end, what keeps it, why.

Real clips recorded in the past (written with PyAV, ingested through the CLI); due dates come from real
sweeps run with an injected clock; the listing itself reads the real clock.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from avlog.context import open_context
from avlog.retention.sweep import SweepReport, load_facts, load_facts_for, sweep
from avlog.samples import write_video
from conftest import TZ, Cli, register

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
WIDE = {"COLUMNS": "320"}  # tables unwrapped, so cells can be read back
MIN_DAYS = 183  # the default policy of a new store (avlog.toml, [retention] min_days)


def local_noon(days_ago: int, minute: int = 0) -> datetime:
    """Noon in the store's zone ``days_ago`` local days back: far from any midnight, whatever the hour now."""
    day = NOW.astimezone(TZ).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(12, minute), tzinfo=TZ)


def release_of(start: datetime) -> str:
    """Where the minimum retention of a clip recorded around ``start`` ends, worked out here from the rule:
    kept through the local day ``MIN_DAYS`` days after its recording day, released at the next local midnight."""
    last_day: date = start.astimezone(TZ).date() + timedelta(days=MIN_DAYS)
    end = datetime.combine(last_day + DAY, time(), tzinfo=TZ)
    assert end - start >= timedelta(days=MIN_DAYS)  # never before MIN_DAYS full days
    return end.isoformat(timespec="seconds")


def iso(moment: datetime) -> str:
    return moment.astimezone(TZ).isoformat(timespec="seconds")


def sweep_at(store: Path, at: datetime) -> SweepReport:
    ctx = open_context(store, actor="sweeper", clock=lambda: at)
    try:
        return sweep(ctx, dry_run=False)
    finally:
        ctx.close()


def ingest_card(cli: Cli, card: Path, starts: dict[str, datetime]) -> dict[str, int]:
    for name, start in starts.items():
        write_video(card / f"{name}.mp4", start=start, seconds=1)
    register(cli)
    result = cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    by_path = {c["original_path"]: c["clip_id"] for c in json.loads(result.stdout)["clips"]}
    return {name: by_path[f"{name}.mp4"] for name in starts}


def listing(cli: Cli) -> dict[int, dict[str, Any]]:
    result = cli("ls", "--json")
    assert result.exit_code == 0, result.stderr
    return {c["id"]: c["retention"] for c in json.loads(result.stdout)["clips"]}


def shown(cli: Cli, clip_id: int) -> dict[str, Any]:
    result = cli("show", str(clip_id), "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def table_row(text: str, clip_id: int) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"│ {clip_id} ")]
    return line


def test_ls_and_show_report_the_retention_decision(cli: Cli, store: Path, tmp_path: Path) -> None:
    starts = {
        "fresh": local_noon(10),
        "purge": local_noon(200),
        "due": local_noon(200, 1),
        "flagged": local_noon(200, 2),
        "case": local_noon(200, 3),
        "held": local_noon(200, 4),
    }
    ids = ingest_card(cli, tmp_path / "card", starts)
    assert cli("flag", str(ids["flagged"]), "--reason", "incident", "--note", "crowd at the gate").exit_code == 0
    assert cli("case", "add", "2026-007", "--title", "gate", "--retain-years", "5").exit_code == 0
    assert cli("case", "link", "2026-007", str(ids["case"])).exit_code == 0
    assert cli("hold", "add", str(ids["held"]), "--reason", "complaint").exit_code == 0
    # "due" is held during the first sweep only, so it becomes due later than "purge".
    early = json.loads(cli("hold", "add", str(ids["due"]), "--reason", "supervision", "--json").stdout)["hold"]

    # Before any sweep: the fresh clip is kept to its minimum; an old clip no rule keeps is due, unmarked.
    ret = listing(cli)
    assert ret[ids["fresh"]] == {
        "decision": "keep",
        "reason": "minimum_retention",
        "until": release_of(starts["fresh"]),
        "due_since": None,
        "purge_after": None,
        "purged_at": None,
        "purge_reason": None,
        "explanation": ret[ids["fresh"]]["explanation"],
    }
    assert release_of(starts["fresh"]) in ret[ids["fresh"]]["explanation"]
    old = ret[ids["purge"]]
    assert (old["decision"], old["reason"], old["due_since"], old["purge_after"]) == ("due", None, None, None)
    assert old["until"] == release_of(starts["purge"]) and datetime.fromisoformat(old["until"]) < NOW
    for name, reason in (("flagged", "flagged_not_on_discs"), ("case", "case_open"), ("held", "hold"), ("due", "hold")):
        assert (ret[ids[name]]["decision"], ret[ids[name]]["reason"], ret[ids[name]]["until"]) == ("keep", reason, None)

    # A sweep eight days ago marked "purge" due; released, "due" was marked by a sweep three days ago.
    first = sweep_at(store, NOW - 8 * DAY)
    assert first.newly_due == [ids["purge"]] and first.purged == []
    assert cli("hold", "release", str(early), "--note", "inspection over").exit_code == 0
    second = sweep_at(store, NOW - 3 * DAY)
    assert second.newly_due == [ids["due"]] and second.purged == []

    ret = listing(cli)
    assert ret[ids["purge"]]["decision"] == "purge"
    assert ret[ids["purge"]]["due_since"] == iso(NOW - 8 * DAY)
    assert ret[ids["purge"]]["purge_after"] == iso(NOW - DAY)  # grace_days = 7 by default
    assert ret[ids["due"]]["decision"] == "due" and ret[ids["due"]]["reason"] is None
    assert ret[ids["due"]]["due_since"] == iso(NOW - 3 * DAY)
    assert ret[ids["due"]]["purge_after"] == iso(NOW + 4 * DAY)
    assert ret[ids["due"]]["until"] == release_of(starts["due"])
    assert iso(NOW - 3 * DAY) in ret[ids["due"]]["explanation"]
    assert iso(NOW + 4 * DAY) in ret[ids["due"]]["explanation"]
    assert ret[ids["fresh"]]["until"] == release_of(starts["fresh"])
    assert ret[ids["case"]]["reason"] == "case_open" and ret[ids["case"]]["until"] is None

    # show says the same as ls, with the flags, cases and holds behind the decision.
    for name, clip_id in ids.items():
        doc = shown(cli, clip_id)["retention"]
        assert {k: doc[k] for k in ret[clip_id]} == ret[clip_id], name
    flagged = shown(cli, ids["flagged"])
    assert flagged["flags"] == ["incident"]
    assert [(f["reason"], f["note"], f["by"]) for f in flagged["retention"]["flags"]] == [
        ("incident", "crowd at the gate", "tester")
    ]
    assert "Art. 20" in flagged["retention"]["explanation"]
    cased = shown(cli, ids["case"])["retention"]
    assert [(k["case"], k["title"], k["open"], k["closed_on"], k["retain_years"]) for k in cased["cases"]] == [
        ("2026-007", "gate", True, None, 5)
    ]
    assert "open case" in cased["explanation"]
    held = shown(cli, ids["held"])["retention"]
    assert [(h["covers"], h["clip_id"], h["reason"], h["placed_by"]) for h in held["holds"]] == [
        ("clip", ids["held"], "complaint", "tester")
    ]
    assert shown(cli, ids["due"])["retention"]["holds"] == []  # its hold was released
    assert "grace period" in shown(cli, ids["purge"])["retention"]["explanation"]

    # The table shows state, retention end and reason; show's table has the explanation.
    table = cli("ls", env=WIDE)
    assert table.exit_code == 0, table.stderr
    assert {"state", "kept until", "retention"} <= {h.strip() for h in table.stdout.splitlines()[1].split("┃")}
    fresh_row = table_row(table.stdout, ids["fresh"])
    assert "stored" in fresh_row and "minimum retention" in fresh_row
    assert release_of(starts["fresh"])[:10] + " 00:00" in fresh_row
    assert "open case" in table_row(table.stdout, ids["case"]) and "indefinitely" in table_row(
        table.stdout, ids["case"]
    )
    assert "legal hold" in table_row(table.stdout, ids["held"])
    assert "flagged" in table_row(table.stdout, ids["flagged"])
    assert "purged by the next sweep" in table_row(table.stdout, ids["purge"])
    text = cli("show", str(ids["due"]), env=WIDE)
    assert text.exit_code == 0 and "Retention:" in text.stdout
    assert ret[ids["due"]]["explanation"] in text.stdout

    # A sweep now, past the grace period, purges "purge": ls and show say so, the tombstone's facts included.
    third = sweep_at(store, NOW)
    assert [r["id"] for r in third.purged] == [ids["purge"]]
    ret = listing(cli)
    gone = ret[ids["purge"]]
    assert (gone["decision"], gone["reason"], gone["until"]) == ("purged", None, None)
    assert gone["purged_at"] == iso(NOW) and gone["purge_reason"]
    assert "tombstone" in gone["explanation"]
    doc = shown(cli, ids["purge"])
    assert doc["state"] == "purged" and doc["retention"]["decision"] == "purged"
    assert ret[ids["due"]]["decision"] == "due" and ret[ids["fresh"]]["decision"] == "keep"
    assert "purged" in table_row(cli("ls", env=WIDE).stdout, ids["purge"])


def test_bulk_facts_match_the_sweeps_facts_with_a_fixed_number_of_queries(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    starts = {f"c{i}": local_noon(200 - i, i) for i in range(6)}
    ids = ingest_card(cli, tmp_path / "card", starts)
    # A spread of marks: a flag, an open and a closed case, a hold through a case and one on a device window.
    assert cli("flag", str(ids["c0"]), "--reason", "dispute").exit_code == 0
    assert cli("case", "add", "K-1", "--retain-years", "2").exit_code == 0
    assert cli("case", "link", "K-1", str(ids["c1"]), str(ids["c2"])).exit_code == 0
    assert cli("case", "add", "K-2", "--retain-until", "2030-01-31").exit_code == 0
    assert cli("case", "link", "K-2", str(ids["c2"]), str(ids["c3"])).exit_code == 0
    assert cli("case", "close", "K-2", "--on", "2026-01-05").exit_code == 0
    assert cli("hold", "add", "--case", "K-1", "--reason", "litigation").exit_code == 0
    window = (local_noon(196).date().isoformat(), local_noon(196).date().isoformat())
    assert (
        cli("hold", "add", "--device", "BC-0001", "--since", window[0], "--until", window[1], "--reason", "x").exit_code
        == 0
    )

    ctx = open_context(store, actor="tester")
    try:
        everything = load_facts(ctx)
        rows = [row for row, _f in everything]
        statements: list[str] = []
        ctx.catalog.db.conn.set_trace_callback(statements.append)
        bulk = load_facts_for(ctx, rows)
        many = sum(s.startswith("SELECT") for s in statements)
        statements.clear()
        single = load_facts_for(ctx, rows[:1])
        one = sum(s.startswith("SELECT") for s in statements)
        ctx.catalog.db.conn.set_trace_callback(None)
        assert [f for _r, f in bulk] == [f for _r, f in everything]
        assert [f for _r, f in single] == [f for _r, f in load_facts(ctx, rows[0]["id"])]
        subset = [rows[4], rows[2]]  # any order, any subset: the rows come back as given
        assert [f for _r, f in load_facts_for(ctx, subset)] == [load_facts(ctx, r["id"])[0][1] for r in subset]
        assert many == one == 5  # flags, cases, holds, findings, discs: no query per clip
        assert load_facts_for(ctx, []) == []
        facts = {f.clip_id: f for _r, f in bulk}
        assert [c.case_id for c in facts[ids["c2"]].cases] == ["K-1", "K-2"]
        assert facts[ids["c1"]].holds and facts[ids["c2"]].holds and not facts[ids["c3"]].holds
        assert facts[ids["c4"]].holds and not facts[ids["c5"]].holds  # the device window covers c4's day only
    finally:
        ctx.close()
