"""Ingest one source for one device: per file copy, hash, prove, probe, record.

Each file is read once: its chunks feed BLAKE3, SHA-256 and the writer into
``tmp/``; the copy is read back from disk and re-hashed before it is renamed
into ``objects/``; only then is its clip row committed, with its audit entry,
in one transaction. A file that cannot be read fails alone and the rest go
on; a full disk stops the run, leaving everything committed so far intact.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from avlog.context import Context
from avlog.errors import AvlogError, DeviceNotRegistered, DiskFull, StoreError
from avlog.i18n import _
from avlog.ingest import timeline
from avlog.ingest.media import (
    SNIFF_BYTES,
    MediaInfo,
    kind_by_extension,
    kind_by_magic,
    probe,
    skip_reason,
    time_from_path,
)
from avlog.ingest.report import IngestProgress, IngestReport, ItemResult, NoProgress
from avlog.ingest.sources import Source, SourceEntry
from avlog.retention.policy import PURGED
from avlog.store.hashing import Digests, copy_and_hash
from avlog.store.objects import CopyNotProven, PutResult
from avlog.timefmt import from_db, to_db

Row = dict[str, Any]

#: Files copied at once from a folder source: on two cores this keeps both busy hashing.
PARALLEL_FILES = 2


class SourceReadError(AvlogError):
    """The card could not be read (unplugged, I/O error, the file changed while being read)."""


class GuardedReader:
    """Wraps a source file so that its read errors are told apart from the store's write errors."""

    def __init__(self, raw: BinaryIO, path: str):
        self.raw = raw
        self.path = path
        if hasattr(raw, "readinto"):
            self.readinto = self._readinto

    def _readinto(self, buffer: memoryview) -> int:
        try:
            return self.raw.readinto(buffer)  # type: ignore[attr-defined, no-any-return]
        except OSError as exc:
            raise SourceReadError(_("cannot read the card: {reason}").format(reason=exc.strerror or exc)) from exc
        except EOFError as exc:  # dissect's streams: a cluster chain shorter than the file
            raise SourceReadError(_("the card ended before the file did")) from exc

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except OSError as exc:
            raise SourceReadError(_("cannot read the card: {reason}").format(reason=exc.strerror or exc)) from exc
        except EOFError as exc:  # dissect's streams: a cluster chain shorter than the file
            raise SourceReadError(_("the card ended before the file did")) from exc


def _plan(
    source: Source, report: IngestReport, should_stop: Callable[[], bool] | None = None
) -> Iterator[tuple[SourceEntry, str]]:
    """The recordings on the card, with their kind; counts what is skipped and why.

    A file whose first bytes cannot be read to tell whether it is a recording
    fails, named, rather than being counted as "not media".
    """
    for entry in source.entries(should_stop=should_stop):
        if entry.error is not None:
            yield entry, "unreadable"
            continue
        reason = entry.skip or ("not_a_file" if entry.special else skip_reason(entry.path))
        kind = None
        if reason is None:
            kind = kind_by_extension(entry.path)
            if kind is None and entry.size:
                try:
                    with source.open(entry) as f:
                        kind = kind_by_magic(f.read(SNIFF_BYTES))
                except (OSError, EOFError) as exc:
                    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    error = _("cannot open the file on the card: {reason}").format(reason=why)
                    yield replace(entry, error=error), "unreadable"
                    continue
            if kind is None:
                reason = "not_media"
        if reason is not None:
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
            continue
        assert kind is not None
        yield entry, kind


def _mark_interrupted(ctx: Context) -> None:
    """Runs of this host whose process is gone (killed, crashed) are closed as ``interrupted``."""
    rows = ctx.catalog.query("SELECT id, pid FROM ingests WHERE status = 'running' AND host = ?", [ctx.host])
    for row in rows:
        if row["pid"] == os.getpid():
            continue
        try:
            os.kill(row["pid"], 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with ctx.catalog.change():
            ctx.catalog.update("ingests", row["id"], {"status": "interrupted"}, where="status = 'running'")
            ctx.catalog.audit("ingest.interrupted", f"ingest:{row['id']}", {"pid": row["pid"]})


def _close_interrupted(ctx: Context, report: IngestReport) -> None:
    """Ctrl-C: the clips committed so far stand; the run is closed as ``interrupted`` now, not left ``running``."""
    try:
        with ctx.catalog.change():
            ctx.catalog.update(
                "ingests",
                report.ingest_id,
                {"status": "interrupted", "finished_at": ctx.catalog.now()},
                where="status = 'running'",
            )
            ctx.catalog.audit("ingest.interrupted", f"ingest:{report.ingest_id}", {"pid": os.getpid()})
    except (AvlogError, OSError):
        pass  # the next run of this host closes it (_mark_interrupted)


def _open(source: Source, entry: SourceEntry) -> BinaryIO:
    try:
        return source.open(entry)
    except (OSError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SourceReadError(_("cannot open the file on the card: {reason}").format(reason=reason)) from exc


class _Repairs:
    """The objects ``verify`` found missing or altered, each repaired by the first copy of its content in a run:
    a card holding the content twice (a copied file) repairs it once, with one ``object.repair`` entry."""

    def __init__(self, damaged: frozenset[str]):
        self.damaged = damaged
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, blake3: str) -> bool:
        """Whether the caller's proven copy is the one that replaces this object (true once per content)."""
        with self._lock:
            if blake3 not in self.damaged or blake3 in self._claimed:
                return False
            self._claimed.add(blake3)
            return True


def _copy(
    ctx: Context,
    source: Source,
    entry: SourceEntry,
    progress: IngestProgress,
    known: dict[str, Any] | None,
    repairs: _Repairs,
) -> tuple[Digests, bool, bool]:
    """Copy one file into the store: its digests, whether an object was written, whether that was a repair.

    A file already catalogued for this device under this path and size is first
    only hashed: when it still has the same content and its object is present,
    nothing is written; nor when its clip was purged (a re-handover: the rules
    let that recording go, and the store does not take it back silently). An
    object that ``verify`` found damaged is replaced by the proven copy.
    """
    purged = known is not None and known["state"] == PURGED
    if (
        known is not None
        and known["blake3"] not in repairs.damaged
        and (purged or ctx.objects.size(known["blake3"]) == entry.size)
    ):
        with _open(source, entry) as raw:
            digests = copy_and_hash(GuardedReader(raw, entry.path), None, progress.advance)  # type: ignore[arg-type]
        _check_complete(source, entry, digests)
        if digests.blake3 == known["blake3"]:
            return digests, False, False
        progress.advance(-digests.size)
    claimed: list[bool] = []

    def replace(blake3: str) -> bool:
        claimed.append(repairs.claim(blake3))
        return claimed[-1]

    with _open(source, entry) as raw:
        result: PutResult = ctx.objects.put(
            GuardedReader(raw, entry.path),  # type: ignore[arg-type]
            progress.advance,
            lambda d: _check_complete(source, entry, d),
            replace=replace,
        )
    return result.digests, result.created, result.replaced or (result.created and any(claimed))


def _check_complete(source: Source, entry: SourceEntry, digests: Digests) -> None:
    if digests.size != entry.size:
        raise SourceReadError(
            _("read {got} bytes but the card lists {want}: the file changed or the card was removed").format(
                got=digests.size, want=entry.size
            )
        )
    reason = source.recheck(entry)
    if reason:
        raise SourceReadError(reason)


def _record(
    ctx: Context,
    report: IngestReport,
    item: ItemResult,
    digests: Digests,
    info: MediaInfo | None,
    entry: SourceEntry,
) -> None:
    """Commit one file's outcome: object row, clip row (when new) and audit entry, in one transaction."""
    catalog = ctx.catalog
    now = catalog.now()
    with catalog.change():
        # Under the catalog's write lock, which the retention sweep also holds while it removes objects:
        # the object this clip will name is on disk now, so no clip row is committed without its bytes.
        if ctx.objects.size(digests.blake3) != digests.size:
            raise CopyNotProven(
                _("the store's copy of {path} was removed while it was being recorded; run the ingest again").format(
                    path=entry.path
                )
            )
        catalog.insert(
            "objects",
            {"blake3": digests.blake3, "sha256": digests.sha256, "size": digests.size, "stored_at": now},
            or_ignore=True,
        )
        if item.repaired:
            catalog.observe("objects", digests.blake3, {"last_verify_result": "repaired", "last_verified_at": now})
            catalog.audit("object.repair", f"object:{digests.blake3}", {"ingest": report.ingest_id}, at=now)
        existing = catalog.clip_by_key(report.device_serial, entry.path, digests.blake3)
        if existing is not None:
            item.clip_id, item.new_clip = existing["id"], False
        else:
            assert info is not None
            clip = {
                "blake3": digests.blake3,
                "sha256": digests.sha256,
                "size": digests.size,
                "device_serial": report.device_serial,
                "unregistered_device": 0 if report.registered else 1,
                "ingest_id": report.ingest_id,
                "original_path": entry.path,
                "original_mtime": to_db(entry.mtime) if entry.mtime else None,
                "original_name": _original_name(entry),
                "media_kind": item.media_kind,
                "container": info.container,
                "codec": info.codec,
                "recorded_start": to_db(info.start) if info.start else None,
                "recorded_end": to_db(info.end) if info.end else None,
                "duration_s": info.duration_s,
                "time_source": info.time_source,
                "probe_error": info.error,
                "ingested_at": now,
                "state": "stored",
            }
            item.clip_id = catalog.insert("clips", clip)
            item.new_clip = True
        _insert_item(ctx, report, item)
        details = {
            "ingest": report.ingest_id,
            "path": entry.path,
            "blake3": digests.blake3,
            "sha256": digests.sha256,
            "size": digests.size,
            "status": item.status,
        }
        if item.new_clip:
            ctx.catalog.audit("clip.add", f"clip:{item.clip_id}", details, at=now)
        else:
            ctx.catalog.audit("ingest.duplicate", f"clip:{item.clip_id}", details, at=now)


def _record_rehandover(
    ctx: Context, report: IngestReport, item: ItemResult, tombstone: Row, entry: SourceEntry
) -> None:
    """A recording handed over again after its clip was purged: recorded and linked to the tombstone, not stored
    again (its retention ended under the rules; storing it anew would only have the next sweep purge it)."""
    item.status, item.clip_id = "rehandover", tombstone["id"]
    catalog = ctx.catalog
    with catalog.change():
        _insert_item(ctx, report, item)
        catalog.audit(
            "clip.rehandover",
            f"clip:{tombstone['id']}",
            {
                "ingest": report.ingest_id,
                "path": entry.path,
                "blake3": item.blake3,
                "purged_at": tombstone["purged_at"],
            },
        )


def _insert_item(ctx: Context, report: IngestReport, item: ItemResult) -> None:
    """The ``ingest_items`` row of one file, whatever its outcome, inside the caller's change."""
    ctx.catalog.insert(
        "ingest_items",
        {
            "ingest_id": report.ingest_id,
            "original_path": item.original_path,
            "original_name": _original_name(item.entry),
            "size": item.size,
            "status": item.status,
            "error": item.error,
            "blake3": item.blake3,
            "sha256": item.sha256,
            "clip_id": item.clip_id,
        },
    )


def _original_name(entry: SourceEntry | None) -> str | None:
    """The name's bytes as the card stores them (JSON), kept where the name shown differs from them."""
    raw = getattr(entry, "original_name", None)
    return json.dumps(raw, sort_keys=True) if raw else None


def _record_failure(ctx: Context, report: IngestReport, item: ItemResult) -> None:
    with ctx.catalog.change():
        _insert_item(ctx, report, item)
        ctx.catalog.audit(
            "ingest.failed",
            f"ingest:{report.ingest_id}",
            {"path": item.original_path, "size": item.size, "error": item.error},
        )


def ingest(
    ctx: Context,
    source: Source,
    device_serial: str,
    *,
    allow_unregistered: bool = False,
    progress: IngestProgress | None = None,
    plugged_at: datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestReport:
    """Ingest every recording of ``source`` as coming from device ``device_serial``.

    ``plugged_at`` is when the recorder was seen attached (for the Art. 11 clock
    check; default: the start of the run). When ``should_stop`` turns true, the
    files already being copied are finished and committed, the rest are left
    for the next run, and the run ends as ``stopped``.
    """
    progress = progress or NoProgress()
    catalog = ctx.catalog
    device = catalog.device(device_serial)
    if device is None and not allow_unregistered:
        # Art. 5, 16: recorders are for official use only; unknown devices are never mixed in silently.
        raise DeviceNotRegistered(
            _(
                "device {serial} is not registered; register it first: "
                "avlog device register {serial} --custodian NAME --unit UNIT"
            ).format(serial=device_serial)
        )
    ctx.objects.clean_tmp()
    ctx.objects.ensure_room()  # below the catalog's reserve nothing starts (DiskFull, one line)
    _mark_interrupted(ctx)

    started = ctx.clock()
    report = IngestReport(
        ingest_id=0,
        device_serial=device_serial,
        custodian=device["custodian"] if device else None,
        registered=device is not None,
        source=source.location,
        source_kind=source.kind,
        started_at=started,
        plugged_at=plugged_at or started,
    )
    plan = list(_plan(source, report, should_stop))
    if should_stop is not None and should_stop():
        report.stopped = True  # asked to stop while the card was listed: what was not listed waits too
    with catalog.change():
        ingest_id = catalog.insert(
            "ingests",
            {
                "started_at": to_db(started),
                "actor": ctx.actor,
                "host": ctx.host,
                "pid": os.getpid(),
                "device_serial": device_serial,
                "device_registered": int(device is not None),
                "custodian": report.custodian,
                "source": source.location,
                "source_kind": source.kind,
                "status": "running",
                "skipped": sum(report.skipped.values()),
            },
        )
        assert ingest_id is not None
        report.ingest_id = int(ingest_id)
        catalog.audit(
            "ingest.start",
            f"ingest:{report.ingest_id}",
            {
                "device": device_serial,
                "registered": device is not None,
                "custodian": report.custodian,
                "source": source.location,
                "files": len(plan),
                "skipped": report.skipped,
            },
        )

    progress.begin(len(plan), sum(e.size for e, _k in plan))
    try:
        new_clips: list[int] = []
        # Copies run on worker threads (hashing and writing release the GIL); catalog work stays on this
        # thread, in card order. A raw card shares one file handle and is read one file at a time.
        workers = PARALLEL_FILES if source.parallel_reads else 1
        repairs = _Repairs(
            frozenset(
                row["blake3"]
                for row in catalog.query(
                    "SELECT blake3 FROM objects WHERE last_verify_result IN ('mismatch', 'missing')"
                )
            )
        )
        in_flight: deque[tuple[SourceEntry, ItemResult, Future[tuple[Digests, bool, bool]]]] = deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
            for entry, kind in plan:
                item = ItemResult(original_path=entry.path, size=entry.size, media_kind=kind, entry=entry)
                report.items.append(item)
                if entry.error is not None:
                    item.media_kind, item.error = None, entry.error
                    _try_record_failure(ctx, report, item)
                    continue
                if report.aborted:
                    item.error = report.aborted
                    continue
                if should_stop is not None and should_stop():
                    report.stopped = True
                    report.items.pop()
                    break
                try:
                    # The files still being copied count in full: what they have written is already gone from
                    # the free space, so this errs on the side of the catalog's reserve.
                    ctx.objects.ensure_room(entry.size + sum(e.size for e, _i, _c in in_flight))
                except DiskFull as exc:
                    item.error = str(exc)
                    report.aborted = _("not ingested: the store's disk is down to the reserve kept for the catalog")
                    _try_record_failure(ctx, report, item)
                    continue
                known = catalog.one(
                    "SELECT blake3, state FROM clips WHERE device_serial = ? AND original_path = ? AND size = ? "
                    "ORDER BY id DESC LIMIT 1",
                    [device_serial, entry.path, entry.size],
                )
                progress.file(entry.path, entry.size)
                copy = pool.submit(_copy, ctx, source, entry, progress, known, repairs)
                in_flight.append((entry, item, copy))
                while len(in_flight) >= workers:
                    _settle(ctx, report, *in_flight.popleft(), new_clips)
            while in_flight:
                _settle(ctx, report, *in_flight.popleft(), new_clips)
    except KeyboardInterrupt:
        _close_interrupted(ctx, report)
        raise
    finally:
        progress.end()  # never leave a live display behind (Ctrl-C, an internal error)

    report.finished_at = ctx.clock()
    _finish(ctx, report, new_clips)
    return report


def _settle(
    ctx: Context,
    report: IngestReport,
    entry: SourceEntry,
    item: ItemResult,
    copy: Future[tuple[Digests, bool, bool]],
    new_clips: list[int],
) -> None:
    """Wait for one file's copy, then probe it and commit its outcome (this thread owns the catalog)."""
    try:
        digests, created, item.repaired = copy.result()
        item.blake3, item.sha256 = digests.blake3, digests.sha256
        item.status = "stored" if created else "duplicate"
        info = None
        existing = ctx.catalog.clip_by_key(report.device_serial, entry.path, digests.blake3)
        if existing is not None and existing["state"] == PURGED:
            _record_rehandover(ctx, report, item, existing, entry)
            return
        if existing is None:
            info = probe(ctx.objects.path(digests.blake3), entry.name, entry.mtime, ctx.settings.tz)
            item.time_source, item.probe_error = info.time_source, info.error
        _record(ctx, report, item, digests, info, entry)
        if item.new_clip and item.clip_id is not None:
            new_clips.append(item.clip_id)
    except DiskFull as exc:
        item.status, item.error = "failed", str(exc)
        report.aborted = _("not ingested: the store's disk is full")
        _try_record_failure(ctx, report, item)
    except (SourceReadError, CopyNotProven) as exc:
        item.status, item.error = "failed", str(exc)
        _try_record_failure(ctx, report, item)
    except StoreError as exc:  # the catalog stayed locked or broke: stop before more copies pile up
        item.status, item.error = "failed", str(exc)
        report.aborted = str(exc)
        _try_record_failure(ctx, report, item)
    except OSError as exc:  # the card side is wrapped as SourceReadError: this is the store failing
        item.status = "failed"
        item.error = _("cannot write to the store: {reason}").format(reason=exc.strerror or exc)
        report.aborted = _("not ingested: the store could not be written")
        _try_record_failure(ctx, report, item)


def _try_record_failure(ctx: Context, report: IngestReport, item: ItemResult) -> None:
    try:
        _record_failure(ctx, report, item)
    except StoreError as exc:
        report.aborted = report.aborted or str(exc)
    except DiskFull:
        report.aborted = report.aborted or _("not ingested: the store's disk is full")


def _finish(ctx: Context, report: IngestReport, new_clips: list[int]) -> None:
    catalog = ctx.catalog
    assert report.finished_at is not None
    fresh = set(new_clips)
    fresh_rows = [row for row in catalog.clips(ingest_id=report.ingest_id) if row["id"] in fresh]
    clips = [
        timeline.ClipTimes(
            id=row["id"],
            blake3=row["blake3"],
            kind=row["media_kind"],
            start=from_db(row["recorded_start"]),
            end=from_db(row["recorded_end"]),
        )
        for row in fresh_rows
    ]
    ingest_settings = ctx.settings.ingest
    plausible = [
        c.start
        for c in clips
        if c.start is not None
        and report.finished_at - timedelta(days=ingest_settings.implausible_age_days)
        <= c.start
        <= report.finished_at + timedelta(seconds=ingest_settings.future_tolerance_s)
    ]
    neighbours: list[timeline.ClipTimes] = []
    if plausible:
        ends = [c.end for c in clips if c.end is not None and c.start in plausible]
        rows = catalog.query(
            "SELECT id, blake3, media_kind, recorded_start, recorded_end FROM clips "
            "WHERE device_serial = ? AND state = 'stored' AND ingest_id != ? "
            "AND recorded_end >= ? AND recorded_start <= ?",
            [report.device_serial, report.ingest_id, to_db(min(plausible)), to_db(max(ends + plausible))],
        )
        neighbours = [
            timeline.ClipTimes(
                id=r["id"],
                blake3=r["blake3"],
                kind=r["media_kind"],
                start=from_db(r["recorded_start"]),
                end=from_db(r["recorded_end"]),
            )
            for r in rows
        ]
    report.findings = timeline.check(
        clips,
        ingested_at=report.finished_at,
        settings=ingest_settings,
        tz=ctx.settings.tz,
        neighbours=neighbours,
    )
    # Art. 11: the time in a file's name against its container's (a clock changed between them, a renamed file).
    name_times = {
        row["id"]: named
        for row in fresh_rows
        if row["time_source"] == "container" and (named := time_from_path(row["original_path"], ctx.settings.tz))
    }
    report.findings += timeline.name_time_findings(
        clips, name_times, tolerance_s=ingest_settings.name_time_tolerance_s, tz=ctx.settings.tz
    )
    previous = catalog.one(
        "SELECT MAX(started_at) AS at FROM ingests WHERE device_serial = ? AND id != ? "
        "AND status = 'done'",  # a partial or stopped run left files on the card that are older than it
        [report.device_serial, report.ingest_id],
    )
    assert report.plugged_at is not None
    report.clock = timeline.clock_check(
        clips,
        plugged_at=report.plugged_at,
        previous_handover=from_db(previous["at"]) if previous else None,
        settings=ingest_settings,
    )
    already = {(f.kind, f.clip_id) for f in report.findings}
    if report.clock.finding is not None and ("future", report.clock.finding.clip_id) not in already:
        report.findings.append(report.clock.finding)
    newest = report.clock.newest_end
    clock_notes = {
        "plugged_at": to_db(report.plugged_at),
        "newest_clip_end": to_db(newest) if newest else None,
        "host_minus_newest_s": round((report.plugged_at - newest).total_seconds(), 1) if newest else None,
        "previous_handover": to_db(report.clock.previous_handover) if report.clock.previous_handover else None,
        "verdict": report.clock.finding.kind if report.clock.finding else "ok",
    }
    try:
        with catalog.change():
            for f in report.findings:
                catalog.insert(
                    "findings",
                    {
                        "ingest_id": report.ingest_id,
                        "device_serial": report.device_serial,
                        "kind": f.kind,
                        "clip_id": f.clip_id,
                        "other_clip_id": f.other_clip_id,
                        "seconds": f.seconds,
                        "detail": json.dumps(f.detail, ensure_ascii=False) if f.detail else None,
                    },
                )
            catalog.update(
                "ingests",
                report.ingest_id,
                {
                    "finished_at": to_db(report.finished_at),
                    "status": report.status,
                    "stored": report.stored,
                    "duplicates": report.duplicates,
                    "failed": report.failed,
                    "bytes_stored": report.bytes_stored,
                    "clock_notes": json.dumps(clock_notes),
                },
            )
            counts: dict[str, int] = {}
            for f in report.findings:
                counts[f.kind] = counts.get(f.kind, 0) + 1
            catalog.audit(
                "ingest.finish",
                f"ingest:{report.ingest_id}",
                {
                    "status": report.status,
                    "stored": report.stored,
                    "duplicates": report.duplicates,
                    "failed": report.failed,
                    "bytes_stored": report.bytes_stored,
                    "findings": counts,
                },
            )
    except DiskFull:
        # The clips committed so far stand; the run stays "running" and the next run marks it interrupted.
        report.aborted = report.aborted or _(
            "the ingest's closing record and findings could not be written: the store's disk is full"
        )
