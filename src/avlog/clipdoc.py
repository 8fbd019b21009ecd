"""A clip as a JSON document: what ``ls``/``show --json`` print and what a disc's catalog.json holds."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

from avlog.timefmt import show


def clip_json(
    row: dict[str, Any],
    tz: tzinfo,
    custodian: str | None = None,
    flags: list[str] | None = None,
    cases: list[str] | None = None,
) -> dict[str, Any]:
    """SPEC.md's clip shape, plus what else the catalog knows."""
    return {
        "id": row["id"],
        "blake3": row["blake3"],
        "sha256": row["sha256"],
        "size": row["size"],
        "device_serial": row["device_serial"],
        "custodian": custodian,
        "unregistered_device": bool(row["unregistered_device"]),
        "original_path": row["original_path"],
        # The name's bytes on the card where the path shown differs from them (see docs/store-format.md).
        "original_name": json.loads(row["original_name"]) if row.get("original_name") else None,
        "media_kind": row["media_kind"],
        "container": row["container"],
        "codec": row["codec"],
        "recorded_start": show(row["recorded_start"], tz),
        "recorded_end": show(row["recorded_end"], tz),
        "duration_s": row["duration_s"],
        "time_source": row["time_source"],
        "probe_error": row["probe_error"],
        "ingest_id": row["ingest_id"],
        "ingested_at": show(row["ingested_at"], tz),
        "state": row["state"],
        "flags": flags or [],
        "cases": cases or [],
    }
