"""avlog.toml: defaults, the Art. 19 floor, per-kind overrides only upward, vendor profiles; every key, type and
range checked, so that a setting can never be wrong quietly; a store without its settings file says so."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from avlog.errors import SettingsError
from avlog.samples import SampleCard
from avlog.settings import DEFAULT_TOML, NUMBERS, SECTIONS, Settings, load_settings, parse_settings
from conftest import Cli, error_line, register, run_avlog


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
        ("[retention.min_days_by_kind]\nsmell = 400\n", "unknown key retention.min_days_by_kind.smell"),
        ("[retention.min_days_by_kind]\nvidoe = 400\n", "did you mean retention.min_days_by_kind.video?"),
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


def test_the_defaults_file_and_an_empty_file_mean_exactly_the_defaults() -> None:
    assert parse_settings(tomllib.loads(DEFAULT_TOML)) == Settings()
    assert parse_settings({}) == Settings()
    assert Settings().ingest.name_time_tolerance_s == 120
    written = tomllib.loads(DEFAULT_TOML)
    for section, numbers in NUMBERS.items():  # every numeric key is in the file, with its default
        for key, spec in numbers.items():
            assert written[section][key] == spec.default, (section, key)
    assert set(written) == set(SECTIONS)


def edited_defaults(section: str, line: str) -> str:
    """The default file with ``line`` in ``section``, as a person would edit it: replacing the key's line
    where the file has one, else added under the section's header (or in a new section)."""
    key = line.split("=", 1)[0].strip()
    if section in SECTIONS and re.search(rf"^{re.escape(key)} = ", DEFAULT_TOML, re.M):
        return re.sub(rf"^{re.escape(key)} = .*$", lambda _m: line, DEFAULT_TOML, count=1, flags=re.M)
    if section in SECTIONS:
        return DEFAULT_TOML.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    return DEFAULT_TOML + f"\n[{section}]\n{line}\n"


BAD_SETTINGS = [
    # (section, line, words the one-line refusal must hold besides the file's name)
    ("retention", "min_days = inf", ["retention.min_days = inf", "not a finite number"]),
    ("retention", "min_days = -inf", ["retention.min_days = -inf", "not a finite number"]),
    ("retention", "min_days = nan", ["retention.min_days = nan", "not a finite number"]),
    ("retention", "min_days = 90", ["retention.min_days = 90", "Art. 19"]),
    ("retention", "min_days = 36501", ["retention.min_days = 36501", "183 to 36500"]),
    ("retention", "min_days = 200.5", ["retention.min_days = 200.5", "whole number"]),
    ("retention", 'min_days = "200"', ['retention.min_days = "200"', "whole number"]),
    ("retention", "min_dayz = 200", ["unknown key retention.min_dayz", "did you mean retention.min_days?"]),
    ("retention", "grace_days = -1", ["retention.grace_days = -1", "0 to 3650"]),
    ("retention", "grace_days = 3651", ["retention.grace_days = 3651", "0 to 3650"]),
    ("retention", "disc_copies = 0", ["retention.disc_copies = 0", "1 to 10"]),
    ("retention", "disc_copies = 11", ["retention.disc_copies = 11", "1 to 10"]),
    ("retention", "disc_copies = true", ["retention.disc_copies = true", "whole number"]),
    ("ingest", "gap_tolerance_s = nan", ["ingest.gap_tolerance_s = nan", "not a finite number"]),
    ("ingest", "gap_tolerance_s = 86401", ["ingest.gap_tolerance_s = 86401", "0 to 86400"]),
    ("ingest", "gap_tolerance_s = -0.5", ["ingest.gap_tolerance_s = -0.5", "0 to 86400"]),
    ("ingest", "overlap_tolerance_s = inf", ["ingest.overlap_tolerance_s = inf", "not a finite number"]),
    ("ingest", "future_tolerance_s = [1]", ["ingest.future_tolerance_s = [1]", "must be a number"]),
    ("ingest", "implausible_age_days = nan", ["ingest.implausible_age_days = nan", "not a finite number"]),
    ("ingest", "implausible_age_days = 0", ["ingest.implausible_age_days = 0", "1 to 36500"]),
    ("ingest", "implausible_age_days = 36501", ["ingest.implausible_age_days = 36501", "1 to 36500"]),
    ("ingest", "handover_deadline_hours = 0", ["ingest.handover_deadline_hours = 0", "1 to 8760"]),
    ("ingest", "handover_deadline_hours = 8761", ["ingest.handover_deadline_hours = 8761", "1 to 8760"]),
    ("ingest", "name_time_tolerance_s = -1", ["ingest.name_time_tolerance_s = -1", "0 to 86400"]),
    ("ingest", 'name_time_tolerance_s = "2 min"', ['ingest.name_time_tolerance_s = "2 min"', "must be a number"]),
    ("ingest", "gap_tolerence_s = 10", ["unknown key ingest.gap_tolerence_s", "did you mean ingest.gap_tolerance_s?"]),
    ("ingest", "zzz = 1", ["unknown key ingest.zzz", "[ingest] holds gap_tolerance_s"]),
    ("store", 'timezone = "Mars/Olympus"', ['store.timezone = "Mars/Olympus"', "not a known time zone"]),
    ("store", "timezone = 8", ["store.timezone = 8", "string in quotes"]),
    ("store", 'organisation = "X\\u001b[31m"', ["store.organisation", "\\x1b at character 2"]),
    ("store", 'timezon = "UTC"', ["unknown key store.timezon", "did you mean store.timezone?"]),
    ("discs", 'default_media = "floppy"', ["discs.default_media must be one of", '"floppy"']),
    ("discs", 'read_back_drives = "all"', ['discs.read_back_drives must be "optical" or "any"', '"all"']),
    ("disc", 'default_media = "cd"', ["unknown section [disc]", "did you mean [discs]?"]),
    ("paths", "x = 1", ["unknown section [paths]", "the sections are [store], [ingest], [retention], [discs]"]),
]


@pytest.mark.parametrize("section, line, words", BAD_SETTINGS, ids=[line for _s, line, _w in BAD_SETTINGS])
def test_each_bad_setting_is_refused_in_one_line_naming_the_file_key_and_value(
    store: Path, section: str, line: str, words: list[str]
) -> None:
    settings = store / "avlog.toml"
    settings.write_text(edited_defaults(section, line), encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings(settings)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{settings}: ")
    for word in words:
        assert word in message, message
    result = run_avlog(store, "ls")  # and the command line says the same in its one line
    assert result.returncode == 1
    assert error_line(result.stderr) == f"avlog: {message}"


def test_a_key_at_the_top_of_the_file_is_sent_to_its_section(store: Path) -> None:
    settings = store / "avlog.toml"
    settings.write_text('timezone = "UTC"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"timezone belongs in the \[store\] section"):
        load_settings(settings)


def test_a_settings_file_that_is_not_utf8_is_named_with_the_offset(store: Path) -> None:
    settings = store / "avlog.toml"
    settings.write_bytes(b'[store]\norganisation = "\xd6\xd0\xce\xc4"\n')  # GB2312, not UTF-8
    result = run_avlog(store, "ls")
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line == f"avlog: {settings} is not valid UTF-8: the byte 0xd6 at offset 24; save it as UTF-8"


def test_a_byte_order_mark_is_no_reason_to_refuse_the_file(store: Path) -> None:
    settings = store / "avlog.toml"
    settings.write_bytes(b"\xef\xbb\xbf" + DEFAULT_TOML.encode("utf-8"))
    assert load_settings(settings) == Settings()


def test_a_huge_settings_file_is_refused_without_reading_it_all(store: Path) -> None:
    settings = store / "avlog.toml"
    with open(settings, "wb") as f:
        f.write(DEFAULT_TOML.encode("utf-8") + b"#" * (2 << 20))
    with pytest.raises(SettingsError, match="larger than 1 MB"):
        load_settings(settings)


def test_a_store_without_its_settings_file_says_so_and_init_writes_the_defaults(store: Path) -> None:
    (store / "avlog.toml").unlink()
    result = run_avlog(store, "ls")
    assert result.returncode == 1 and result.stdout == ""
    line = error_line(result.stderr)
    assert line == (
        f"avlog: no avlog.toml in {store}: its settings and retention policy are missing; restore it from a "
        f"backup, or run `avlog --store {store} init` to write the defaults"
    )
    assert not (store / "avlog.toml").exists()  # nothing was written behind the user's back
    init = run_avlog(store, "init")
    assert init.returncode == 0, init.stderr
    assert f"Wrote the default settings to {store / 'avlog.toml'}" in init.stderr
    assert (store / "avlog.toml").read_text(encoding="utf-8") == DEFAULT_TOML
    assert run_avlog(store, "ls", "--json").returncode == 0
