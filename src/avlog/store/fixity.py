"""Fixity: re-hash stored objects against the catalog and record what was found."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from avlog.store.catalog import Catalog
from avlog.store.objects import ObjectStore


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
    recorded: bool = True  # False on a read-only store: the results were not written into the catalog


def verify_objects(
    catalog: Catalog,
    objects: ObjectStore,
    *,
    sample: int | None = None,
    seed: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> VerifyReport:
    """Re-hash (BLAKE3 and SHA-256) every object a stored clip needs, or a random ``sample``, from disk.

    Every failure is listed, none stops the run; the results and a summary
    entry go into the catalog.
    """
    rows = catalog.live_objects()
    report = VerifyReport(sampled=sample is not None)
    if sample is not None and sample < len(rows):
        rows = sorted(random.Random(seed).sample(rows, sample), key=lambda o: o["blake3"])
    results: dict[str, str | None] = {}
    for obj in rows:
        problem = objects.check(obj["blake3"], obj["size"], obj["sha256"])
        results[obj["blake3"]] = problem
        report.checked += 1
        if problem is None:
            report.ok += 1
        else:
            clips = catalog.query(
                "SELECT id FROM clips WHERE blake3 = ? AND state = 'stored' ORDER BY id", [obj["blake3"]]
            )
            report.bad.append(BadObject(obj["blake3"], problem, [c["id"] for c in clips]))
        if progress is not None:
            progress(obj["blake3"], obj["size"])
    catalogued = {row["blake3"] for row in catalog.query("SELECT blake3 FROM objects")}
    report.unreferenced = [h for h in objects.iter_hexdigests() if h not in catalogued]
    if catalog.read_only:
        report.recorded = False
        return report
    catalog.record_verification(
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
