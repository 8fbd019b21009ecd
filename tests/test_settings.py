"""avlog.toml: defaults, the Art. 19 floor, per-kind overrides only upward, vendor profiles."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from avlog.errors import SettingsError
from avlog.samples import SampleCard
from avlog.settings import DEFAULT_TOML, parse_settings
from conftest import Cli, register


def settings_with(extra: str) -> dict[str, object]:
    return tomllib.loads(DEFAULT_TOML + "\n" + extra)


def test_the_commented_defaults_parse_to_the_documented_values() -> None:
    settings = parse_settings(tomllib.loads(DEFAULT_TOML))
    assert (settings.timezone, settings.retention.min_days, settings.retention.grace_days) == ("Asia/Shanghai", 183, 7)
    assert settings.retention.min_days_by_kind == () and settings.ingest.profiles == ()


@pytest.mark.parametrize(
    "extra, words",
    [
        ("[retention.min_days_by_kind]\naudio = 100\n", "shorter than retention.min_days"),
        ("[retention.min_days_by_kind]\nsmell = 400\n", "not one of"),
        ('[[ingest.profile]]\nvendor_id = "1d6b"\nserial_file = "X"\nserial_pattern = "no group"\n', "one (group)"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(extra: str, words: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings(settings_with(extra))
    assert words in str(raised.value)


def test_a_kind_override_keeps_that_kind_longer(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    assert cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001").exit_code == 0
    ends = {c["media_kind"]: c["retention"]["until"] for c in json.loads(cli("ls", "--json").stdout)["clips"]}
    toml = store / "avlog.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + "\n[retention.min_days_by_kind]\naudio = 400\n", encoding="utf-8"
    )
    longer = {c["media_kind"]: c["retention"]["until"] for c in json.loads(cli("ls", "--json").stdout)["clips"]}
    assert longer["video"] == ends["video"]
    assert longer["audio"] > ends["audio"]
    toml.write_text(toml.read_text(encoding="utf-8").replace("audio = 400", "audio = 30"), encoding="utf-8")
    refused = cli("ls")
    assert refused.exit_code == 1 and "overrides may only keep recordings longer" in refused.stderr
