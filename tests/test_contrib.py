"""The shipped systemd units are valid for systemd itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import require_tool, venv_tool

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    avlog = str(venv_tool("avlog"))  # this environment's, not whichever one PATH finds
    units = []
    for unit in sorted((CONTRIB / "systemd").iterdir()):
        text = unit.read_text(encoding="utf-8").replace("/usr/local/bin/avlog", avlog)
        copy = tmp_path / unit.name
        copy.write_text(text, encoding="utf-8")
        units.append(str(copy))
    assert {Path(u).name for u in units} == {"avlog-watch.service", "avlog-nightly.service", "avlog-nightly.timer"}
    done = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def unit_settings(name: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a shipped unit (all sections), values in file order; comments skipped."""
    settings: dict[str, list[str]] = {}
    for line in (CONTRIB / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def udev_assignments(key: str) -> list[str]:
    """The values the shipped udev rule assigns to ``key`` (``KEY="value"``, not the match ``KEY=="value"``)."""
    text = (CONTRIB / "udev" / "90-avlog.rules").read_text(encoding="utf-8")
    rules = text.replace("\\\n", " ")  # continuation lines
    body = "\n".join(line for line in rules.splitlines() if not line.lstrip().startswith("#"))
    return re.findall(rf'(?<![A-Z_{{]){key}:?="([^"]*)"', body)


def test_watch_unit_stops_with_sigterm_and_runs_as_avlog() -> None:
    lines = unit_settings("avlog-watch.service")
    assert lines["ExecStart"][-1].endswith("avlog watch")
    assert lines["KillSignal"] == ["SIGTERM"]
    assert lines["User"] == ["avlog"]
    assert lines["Group"] == ["avlog"]


def test_no_unit_runs_in_the_disk_group() -> None:
    """The ``disk`` group may write every disk raw, the store's own included: no service needs it."""
    for unit in sorted((CONTRIB / "systemd").glob("*.service")):
        lines = unit_settings(unit.name)
        groups = [g for key in ("Group", "SupplementaryGroups") for value in lines.get(key, []) for g in value.split()]
        assert "disk" not in groups, f"{unit.name} runs in the disk group"


def test_the_udev_rule_gives_the_cards_to_the_watch_units_group() -> None:
    """The watch unit reads (and clears) cards raw through the group the udev rule gives their nodes."""
    assert udev_assignments("GROUP") == unit_settings("avlog-watch.service")["Group"] == ["avlog"]
    assert udev_assignments("MODE") == ["0660"]  # the group may read (ingest) and write (clear) them


def test_nightly_unit_checks_the_anchors_and_anchors_after_its_checks() -> None:
    (start,) = unit_settings("avlog-nightly.service")["ExecStart"]
    steps = [step.strip() for step in start.split(";")]
    checks = [i for i, step in enumerate(steps) if "avlog audit verify --anchor /var/log/avlog/anchors.jsonl" in step]
    anchors = [
        i for i, step in enumerate(steps) if "avlog audit anchor --syslog --to /var/log/avlog/anchors.jsonl" in step
    ]
    sweep = [i for i, step in enumerate(steps) if "retention-sweep" in step]
    assert sweep and checks and anchors and sweep[0] < checks[0] < anchors[0]
    assert "if [ $$rc -eq 0 ]; then" in start  # a failed check is never anchored
    assert "/var/log/avlog" in unit_settings("avlog-nightly.service")["ReadWritePaths"][0]
