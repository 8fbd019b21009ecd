"""The shipped systemd units are valid for systemd itself."""

from __future__ import annotations

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


def test_watch_unit_stops_with_sigterm_and_runs_as_avlog() -> None:
    text = (CONTRIB / "systemd" / "avlog-watch.service").read_text(encoding="utf-8")
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["ExecStart"].endswith("avlog watch")
    assert lines["KillSignal"] == "SIGTERM"
    assert lines["User"] == "avlog"
    assert "disk" in lines["SupplementaryGroups"]
