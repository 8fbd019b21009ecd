"""Fixity: re-hash stored objects against the catalog and record what was found."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from avlog.context import Context


@dataclass(frozen=True)
class BadObject:
    blake3: str
    problem: str  # missing | mismatch
    clip_ids: list[int]


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    bad: list[BadObject] = field(default_factory=list)
    sampled: bool = False
    # Complete objects no catalog row names: left by a crash between an object's rename and its
    # clip's commit. Not damage; the next ingest of that card links them.
    unreferenced: list[str] = field(default_factory=list)


def verify_objects(
    ctx: Context,
    *,
    sample: int | None = None,
    seed: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> VerifyReport:
    """Re-hash every object a stored clip needs (or a random ``sample`` of them), from disk.

    Every failure is listed, none stops the run; the results and a summary
    entry go into the catalog.
    """
    objects = ctx.catalog.live_objects()
    report = VerifyReport(sampled=sample is not None)
    if sample is not None and sample < len(objects):
        objects = sorted(random.Random(seed).sample(objects, sample), key=lambda o: o["blake3"])
    results: dict[str, str | None] = {}
    for obj in objects:
        problem = ctx.objects.check(obj["blake3"], obj["size"])
        results[obj["blake3"]] = problem
        report.checked += 1
        if problem is None:
            report.ok += 1
        else:
            clips = ctx.catalog.query(
                "SELECT id FROM clips WHERE blake3 = ? AND state = 'stored' ORDER BY id", [obj["blake3"]]
            )
            report.bad.append(BadObject(obj["blake3"], problem, [c["id"] for c in clips]))
        if progress is not None:
            progress(obj["blake3"], obj["size"])
    catalogued = {row["blake3"] for row in ctx.catalog.query("SELECT blake3 FROM objects")}
    report.unreferenced = [h for h in ctx.objects.iter_hexdigests() if h not in catalogued]
    ctx.catalog.record_verification(
        results,
        {
            "checked": report.checked,
            "ok": report.ok,
            "bad": [{"blake3": b.blake3, "problem": b.problem} for b in report.bad],
            "sample": sample,
            "unreferenced": len(report.unreferenced),
        },
    )
    return report
