"""Flags (Art. 20), cases (Art. 19, 21) and legal holds through the CLI, with their audit entries."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from avlog.context import open_context
from avlog.marks import holds_covering
from avlog.samples import SampleCard
from conftest import Cli, register


@pytest.fixture
def clip_ids(cli: Cli, demo_card: SampleCard) -> list[int]:
    register(cli)
    result = cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    return sorted({c["clip_id"] for c in json.loads(result.stdout)["clips"]})


def audit(store: Path, action: str) -> list[dict[str, Any]]:
    with sqlite3.connect(store / "catalog.sqlite") as conn:
        rows = conn.execute("SELECT subject, actor, details FROM audit WHERE action = ? ORDER BY seq", [action])
        entries = [{"subject": s, "actor": a, "details": json.loads(d)} for s, a, d in rows]
    for e in entries:  # the rows the change wrote (the journal) apart from what it says
        e["rows"] = e["details"].pop("rows")
    return entries


def listed(cli: Cli, *args: str) -> list[dict[str, Any]]:
    result = cli("ls", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["clips"]  # type: ignore[no-any-return]


def test_flag_and_unflag(cli: Cli, store: Path, clip_ids: list[int]) -> None:
    a, b = clip_ids[:2]
    assert cli("flag", str(a), str(b), "--reason", "dispute", "--note", "当事人提出异议").exit_code == 0
    assert cli("flag", str(a), "--reason", "dispute").exit_code == 0  # flagged already: nothing added
    assert cli("flag", str(a), "--reason", "incident").exit_code == 0
    flagged = {c["id"]: sorted(c["flags"]) for c in listed(cli, "--flagged")}
    assert flagged == {a: ["dispute", "incident"], b: ["dispute"]}
    assert [e["subject"] for e in audit(store, "clip.flag")] == [f"clip:{a}", f"clip:{b}", f"clip:{a}"]

    assert cli("flag", str(a), "--reason", "gossip").exit_code == 2
    assert cli("unflag", str(b), "--note", " ").exit_code == 2  # the reason for unflagging is required
    assert cli("unflag", str(b), "--note", "复议结束").exit_code == 0
    assert cli("unflag", str(b), "--note", "again").exit_code == 1  # nothing left to end
    assert {c["id"] for c in listed(cli, "--flagged")} == {a}
    (entry,) = audit(store, "clip.unflag")
    assert entry["subject"] == f"clip:{b}" and entry["details"] == {"reason": "dispute", "note": "复议结束"}
    shown = json.loads(cli("show", str(a), "--json").stdout)
    assert sorted(shown["flags"]) == ["dispute", "incident"]
    assert [e["action"] for e in shown["audit"]].count("clip.flag") == 2


def test_cases_keep_their_clips_and_close_with_a_retention_end(cli: Cli, store: Path, clip_ids: list[int]) -> None:
    a, b, c = clip_ids[:3]
    assert cli("case", "add", "2026-017", "--title", "某餐馆投诉", "--retain-years", "5").exit_code == 0
    assert cli("case", "add", "2026-017", "--retain-years", "5").exit_code == 1  # exists already
    assert cli("case", "add", "2026-018").exit_code == 2  # retention is required
    assert cli("case", "add", "2026-018", "--retain-until", "2030-01-01", "--retain-years", "2").exit_code == 2
    assert cli("case", "add", "2026-019", "--retain-until", "next year").exit_code == 2
    assert cli("case", "link", "2026-017", str(a), str(b)).exit_code == 0
    assert cli("case", "link", "2026-017", str(a)).exit_code == 0  # linked already: unchanged
    assert cli("case", "link", "9999", str(a)).exit_code == 1

    doc = json.loads(cli("case", "show", "2026-017", "--json").stdout)
    assert (doc["open"], doc["clips"], doc["retain_until"]) == (True, [a, b], None)
    assert {x["id"] for x in listed(cli, "--case", "2026-017")} == {a, b}
    assert cli("ls", "--case", "nope").exit_code == 1

    assert cli("case", "unlink", "2026-017", str(b), "--note", "误关联").exit_code == 0
    assert cli("case", "unlink", "2026-017", str(c), "--note", "x").exit_code == 1  # never linked
    closed = json.loads(cli("case", "close", "2026-017", "--on", "2026-12-20", "--json").stdout)
    assert (closed["open"], closed["closed_on"], closed["retain_until"]) == (False, "2026-12-20", "2031-12-20")
    assert cli("case", "close", "2026-017", "--on", "2026-12-21").exit_code == 1
    assert json.loads(cli("show", str(a), "--json").stdout)["cases"] == ["2026-017"]
    assert json.loads(cli("show", str(b), "--json").stdout)["cases"] == []
    assert [e["subject"] for e in audit(store, "case.link")] == [f"clip:{a}", f"clip:{b}"]
    (closing,) = audit(store, "case.close")
    assert closing["details"] == {"closed_on": "2026-12-20", "retain_until": "2031-12-20"}
    assert closing["rows"] == [["update", "cases", {"id": 1, "closed_on": "2026-12-20", "retain_until": "2031-12-20"}]]


def test_holds_cover_a_clip_a_case_or_a_device_window(cli: Cli, store: Path, clip_ids: list[int]) -> None:
    a, b = clip_ids[:2]
    assert cli("case", "add", "2026-020", "--retain-until", "2030-01-01").exit_code == 0
    assert cli("case", "link", "2026-020", str(b)).exit_code == 0
    assert cli("hold", "add", str(a), "--reason", "行政诉讼").exit_code == 0
    assert cli("hold", "add", "--case", "2026-020", "--reason", "复议").exit_code == 0
    assert (
        cli(
            "hold", "add", "--device", "BC-0001", "--since", "2000-01-01", "--until", "2000-12-31", "--reason", "督察"
        ).exit_code
        == 0
    )
    assert cli("hold", "add", "--reason", "nothing named").exit_code == 2
    assert cli("hold", "add", str(a), "--case", "2026-020", "--reason", "two targets").exit_code == 2
    assert cli("hold", "add", str(a), "--since", "2026-01-01", "--reason", "window without device").exit_code == 2

    context = open_context(store, actor="tester")
    try:

        def covering(clip_id: int) -> list[int]:
            clip = context.catalog.one("SELECT * FROM clips WHERE id = ?", [clip_id])
            return [h["id"] for h in holds_covering(context, clip)]

        assert covering(a) == [1]  # its own hold; the device window lies years before its recording
        assert covering(b) == [2]  # through its case
        assert cli("hold", "release", "1", "--note", "").exit_code == 2
        assert cli("hold", "release", "1", "--note", "判决已生效").exit_code == 0
        assert cli("hold", "release", "1", "--note", "again").exit_code == 1
        assert covering(a) == []
        assert cli("hold", "add", "--device", "BC-0001", "--reason", "all of it").exit_code == 0
        assert covering(a) == [4] and covering(b) == [2, 4]
    finally:
        context.close()
    standing = json.loads(cli("hold", "list", "--json").stdout)["holds"]
    assert [h["id"] for h in standing] == [2, 3, 4]
    assert [h["id"] for h in json.loads(cli("hold", "list", "--all", "--json").stdout)["holds"]] == [1, 2, 3, 4]
    assert [e["subject"] for e in audit(store, "hold.add")] == [
        f"clip:{a}",
        "case:2026-020",
        "device:BC-0001",
        "device:BC-0001",
    ]
    assert cli("audit", "verify").exit_code == 0


def test_bad_mark_options_are_usage_errors(cli: Cli, clip_ids: list[int]) -> None:
    a = clip_ids[0]
    assert cli("case", "add", "X", "--retain-years", "10000").exit_code == 2  # could never be closed
    assert cli("unflag", str(a), "--note", "n", "--reason", "gossip").exit_code == 2
    assert (
        cli(
            "hold",
            "add",
            "--device",
            "BC-0001",
            "--since",
            "2026-12-01",
            "--until",
            "2026-11-01",
            "--reason",
            "backwards",
        ).exit_code
        == 2
    )


def test_a_bare_until_date_holds_that_whole_day(cli: Cli, store: Path, clip_ids: list[int]) -> None:
    context = open_context(store, actor="tester")
    try:
        clip = context.catalog.one("SELECT * FROM clips WHERE id = ?", [clip_ids[0]])
        start = context.catalog.clips()[0]["recorded_start"]
        day = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(context.settings.tz).date().isoformat()
        assert (
            cli("hold", "add", "--device", "BC-0001", "--since", day, "--until", day, "--reason", "督察").exit_code == 0
        )
        assert [h["id"] for h in holds_covering(context, clip)] == [1]
    finally:
        context.close()
