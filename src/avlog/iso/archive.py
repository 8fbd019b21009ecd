"""``burn-iso``: choose the clips that need discs, pack them, write each image, prove it, record it.

For each planned disc, in order: the image is written under a temporary name (``.AVLOG_2026_0001.iso.part``
next to where it belongs), flushed, dropped from the page cache and read back from the disk
(:mod:`avlog.iso.verify`); every clip's BLAKE3 must equal the catalog's, every bag file its own, and
the ISO 9660 and UDF trees must agree. Only then, in one catalog transaction, the disc row, its clips
and the audit entry are written and the image takes its final name. The final name is a hard link
made inside that transaction (it never replaces an existing file); the ``.part`` name goes after the
commit. A crash before the commit leaves a ``.part`` file (and perhaps its unrecorded final name), which
the store's next run removes; never a disc row without a verified image, nor a final name without a row.
A ``.part`` file is locked while its run lives, and its name carries the store's identity, so runs of
two stores can share an output folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import blake3

from avlog import __version__, marks
from avlog.clipdoc import clip_json
from avlog.context import Context, store_lock
from avlog.errors import AvlogError, IntegrityError, NotFound, UsageError
from avlog.i18n import _
from avlog.iso import bag, registry
from avlog.iso.build import DiscFile, Image, Volume, safe_name
from avlog.iso.media import MEDIA, SECTOR, Medium
from avlog.iso.plan import Item, Plan, PlannedDisc, plan
from avlog.iso.verify import Reading, read_medium
from avlog.store import anchor
from avlog.store.journal import require_agreement
from avlog.store.objects import fsync_dir
from avlog.textsafe import undecodable_character
from avlog.timefmt import from_db, show

Row = dict[str, Any]
#: ``start(volume_id, phase, total_bytes)`` returns the function that advances that phase by n bytes.
Progress = Callable[[str, str, int], Callable[[int], None]]

LOCK_NAME = "burn.lock"
#: Files of the bag besides the clips and their share of the tag files, bounded for the plan.
FIXED_TAG_BYTES = 64 * 1024
TAG_FILES = len(bag.BAG_FILES)


class BurnRunning(AvlogError):
    """Another burn-iso holds the lock."""


@dataclass
class Selected:
    clip: Row
    custodian: str | None
    flags: list[Row]
    cases: list[str]
    copies: int  # discs that stand already
    when: datetime = field(init=False)  # its recording time in the store's zone: its folder, its file's date
    entry: dict[str, Any] = field(init=False)  # its catalog.json record


@dataclass
class DiscResult:
    volume_id: str
    path: Path | None
    media: str
    image_bytes: int
    sha256: str | None
    blake3: str | None
    clip_ids: list[int]
    payload_bytes: int
    free_bytes: int
    verified: bool
    disc_id: int | None = None


@dataclass
class BurnReport:
    medium: Medium
    selected: list[Selected] = field(default_factory=list)
    plan: Plan | None = None
    discs: list[DiscResult] = field(default_factory=list)
    dry_run: bool = False
    evidence_case: str | None = None
    still_needing: list[int] = field(default_factory=list)  # clips that need another run for their copies
    failure: str | None = None  # why the run stopped after making some of its discs
    interrupted: bool = False  # Ctrl-C after making some of its discs


# -- selection --------------------------------------------------------------------------------------


def select(
    ctx: Context,
    *,
    case: str | None = None,
    flag_reason: str | None = None,
    clips: list[str] | None = None,
    evidence_for: str | None = None,
) -> list[Selected]:
    """The stored clips that need a disc now (see ``burn-iso --help``), in catalog order."""
    where = ["c.state = 'stored'"]
    params: list[Any] = []
    if evidence_for is not None:
        case_row = ctx.catalog.one("SELECT * FROM cases WHERE case_no = ?", [evidence_for])
        if case_row is None:
            raise NotFound(_("no case {case}").format(case=evidence_for))
        where.append(
            "EXISTS (SELECT 1 FROM case_clips l WHERE l.clip_id = c.id AND l.unlinked_at IS NULL AND l.case_id = ?)"
        )
        params.append(case_row["id"])
        if not ctx.catalog.one(
            "SELECT 1 FROM case_clips l JOIN clips c ON c.id = l.clip_id "
            "WHERE l.case_id = ? AND l.unlinked_at IS NULL AND c.state = 'stored'",
            [case_row["id"]],
        ):
            raise AvlogError(
                _("case {case} has no clips in the store to put on an evidence disc").format(case=evidence_for)
            )
    else:
        where.append(
            "(EXISTS (SELECT 1 FROM flags f WHERE f.clip_id = c.id AND f.unflagged_at IS NULL) OR "
            "EXISTS (SELECT 1 FROM case_clips l WHERE l.clip_id = c.id AND l.unlinked_at IS NULL))"
        )
    if case is not None:
        if ctx.catalog.one("SELECT 1 FROM cases WHERE case_no = ?", [case]) is None:
            raise NotFound(_("no case {case}").format(case=case))
        where.append(
            "EXISTS (SELECT 1 FROM case_clips l JOIN cases k ON k.id = l.case_id "
            "WHERE l.clip_id = c.id AND l.unlinked_at IS NULL AND k.case_no = ?)"
        )
        params.append(case)
    if flag_reason is not None:
        where.append(
            "EXISTS (SELECT 1 FROM flags f WHERE f.clip_id = c.id AND f.unflagged_at IS NULL AND f.reason = ?)"
        )
        params.append(flag_reason)
    named: list[Row] = [ctx.catalog.resolve_clip(ref) for ref in clips or []]
    if named:
        where.append("c.id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps([r["id"] for r in named]))
    rows = ctx.catalog.query(
        "SELECT c.*, d.custodian AS _custodian FROM clips c LEFT JOIN devices d ON d.serial = c.device_serial "
        f"WHERE {' AND '.join(where)} ORDER BY c.id",
        params,
    )
    copies = registry.standing_copies(ctx)
    need = ctx.settings.retention.disc_copies
    ids = [r["id"] for r in rows]
    flags, cases = marks.flags_by_clip(ctx, ids), marks.cases_by_clip(ctx, ids)
    chosen = []
    for r in rows:
        n = copies.get(r["id"], 0)
        if evidence_for is None and n >= need:
            continue
        chosen.append(_selected(ctx, r, r.pop("_custodian"), flags.get(r["id"], []), cases.get(r["id"], []), n))
    if named:
        found = {s.clip["id"] for s in chosen}
        for r in named:
            if r["id"] in found:
                continue
            if r["state"] != "stored":
                why = _("it was purged; only its tombstone remains")
            elif evidence_for is not None:
                why = _("it is not linked to case {case}").format(case=evidence_for)
            elif copies.get(r["id"], 0) >= need:
                why = _("it is on {n} discs already (retention.disc_copies = {need})").format(
                    n=copies[r["id"]], need=need
                )
            else:
                why = _(
                    "it is neither flagged (Art. 20) nor linked to a case, or not to the --case/--flag-reason given"
                )
            raise UsageError(_("clip {id} needs no disc now: {why}").format(id=r["id"], why=why))
    return chosen


# -- disc paths and items ---------------------------------------------------------------------------


def _local(text: str | None, ctx: Context) -> datetime | None:
    moment = from_db(text)
    return moment.astimezone(ctx.settings.tz) if moment else None


def _when(clip: Row, ctx: Context) -> datetime:
    moment = _local(clip["recorded_start"], ctx) or _local(clip["original_mtime"], ctx)
    if moment is None:
        moment = _local(clip["ingested_at"], ctx)
    assert moment is not None
    return moment.replace(microsecond=0)


def _paths(selected: list[Selected]) -> dict[int, str]:
    """data/<device>/<local recording date>/<original name>; a name taken twice gets the clip id added."""
    paths: dict[int, str] = {}
    taken: set[str] = set()
    for s in sorted(selected, key=lambda s: s.clip["id"]):
        clip = s.clip
        name = safe_name(PurePosixPath(clip["original_path"].replace("\\", "/")).name or f"clip-{clip['id']}")
        folder = f"data/{safe_name(clip['device_serial'])}/{s.when:%Y-%m-%d}"
        path = f"{folder}/{name}"
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        n = 0
        while path.casefold() in taken or path in bag.BAG_FILES:
            # The clip id makes the name unique; a name that happens to end so already gets a counter too.
            suffix = f"~{clip['id']}" + (f"-{n}" if n else "")
            path = f"{folder}/{safe_name(f'{stem}{suffix}{dot}{ext}')}"
            n += 1
        taken.add(path.casefold())
        paths[clip["id"]] = path
    return paths


def _selected(ctx: Context, clip: Row, custodian: str | None, flags: list[Row], cases: list[str], n: int) -> Selected:
    s = Selected(clip, custodian, flags, cases, n)
    s.when = _when(clip, ctx)
    s.entry = _entry(ctx, s)
    return s


def _entry(ctx: Context, s: Selected) -> dict[str, Any]:
    """The clip's catalog.json record: the clip document of ``show --json``, its flags in full."""
    tz = ctx.settings.tz
    doc = clip_json(s.clip, tz, s.custodian, cases=s.cases)
    return {
        "clip_id": doc.pop("id"),
        **doc,
        "original_mtime": show(s.clip["original_mtime"], tz),
        "flags": [
            {"reason": f["reason"], "note": f["note"], "flagged_at": show(f["flagged_at"], tz), "by": f["flagged_by"]}
            for f in s.flags
        ],
    }


def _items(selected: list[Selected], paths: dict[int, str], evidence: bool) -> list[Item]:
    items = []
    for s in selected:
        c = s.clip
        path = paths[c["id"]]
        when, entry = s.when, s.entry
        group = f"case:{s.cases[0]}" if s.cases else f"incident:{c['device_serial']}/{when:%Y-%m-%d}"
        tag = len(bag.manifest_line(c["sha256"], path).encode()) + bag.catalog_entry_bytes(entry, path)
        if evidence:
            tag += bag.explanation_bytes_per_clip(path, entry)
        items.append(Item(c["id"], c["size"], path, group, when.isoformat(), tag))
    return items


# -- the run ----------------------------------------------------------------------------------------


def burn_lock(ctx: Context) -> contextlib.AbstractContextManager[None]:
    """One burn-iso at a time per store: two would number their discs alike."""
    return store_lock(
        ctx, LOCK_NAME, lambda path: BurnRunning(_("another burn-iso is running (it holds {path})").format(path=path))
    )


def medium_named(name: str) -> Medium:
    try:
        return MEDIA[name]
    except KeyError:
        raise UsageError(_("--media must be one of {names}").format(names=", ".join(MEDIA))) from None


def burn_iso(
    ctx: Context,
    *,
    media: str | None = None,
    out: Path | None = None,
    dry_run: bool = False,
    case: str | None = None,
    flag_reason: str | None = None,
    clips: list[str] | None = None,
    evidence_for: str | None = None,
    progress: Progress | None = None,
) -> BurnReport:
    medium = medium_named(media or ctx.settings.default_media)
    report = BurnReport(medium, dry_run=dry_run, evidence_case=evidence_for)
    out_dir = (out or ctx.root / "discs").absolute()
    if not dry_run and undecodable_character(str(out_dir)) is not None:
        # The disc registry keeps each image's path to read it again; the catalog holds UTF-8 only.
        raise UsageError(
            _(
                "{path} is not a UTF-8 path, and the disc registry records where each image is; "
                "write the images to another folder with --out DIR"
            ).format(path=out_dir)
        )
    with burn_lock(ctx):
        with ctx.catalog.snapshot():  # the check and the selection read the catalog at one moment
            if not dry_run:
                require_agreement(
                    ctx.catalog.db,
                    _(
                        "burn-iso made no disc: the catalog differs from its audit log, first at {difference}; "
                        "see every difference with: avlog audit verify"
                    ),
                )
            report.selected = select(ctx, case=case, flag_reason=flag_reason, clips=clips, evidence_for=evidence_for)
        by_id = {s.clip["id"]: s for s in report.selected}
        paths = _paths(report.selected)
        the_plan = plan(
            _items(report.selected, paths, evidence_for is not None),
            medium,
            fixed_tag_bytes=FIXED_TAG_BYTES,
            tag_files=TAG_FILES,
        )
        report.plan = the_plan
        if the_plan.too_big:
            first = the_plan.too_big[0]
            size = first.item.size
            if first.fits_on is not None:
                hint = _("use --media {name}, {size} bytes").format(name=first.fits_on.name, size=first.fits_on.bytes)
            else:
                hint = _("no disc medium is large enough")
            raise UsageError(
                _("clip {id} ({size} bytes) does not fit on a {media} disc; {hint}").format(
                    id=first.item.clip_id, size=size, media=medium.name, hint=hint
                )
            )
        if dry_run:
            year = ctx.clock().astimezone(ctx.settings.tz).year
            seq = registry.next_seq(ctx, year)
            for n, disc in enumerate(the_plan.discs):
                report.discs.append(_planned(registry.volume_id(year, seq + n), medium, disc))
            report.still_needing = _still_needing(ctx, report, evidence_for)
            return report
        if the_plan.discs:
            _prepare_out(ctx, out_dir)
        group = uuid.uuid4().hex
        for n, disc in enumerate(the_plan.discs, start=1):
            chosen = [by_id[i.clip_id] for i in disc.items]
            try:
                made = _make_disc(
                    ctx, medium, disc, chosen, paths, out_dir, evidence_for, group, n, len(the_plan.discs), progress
                )
            except KeyboardInterrupt:
                if not report.discs:
                    raise
                report.interrupted = True  # the discs made so far stand; the CLI shows them, then exits 130
                break
            except Exception as exc:
                if not report.discs:
                    raise
                # The discs made so far stand; the rest wait for the next run.
                report.failure = str(exc) if isinstance(exc, AvlogError) else f"{type(exc).__name__}: {exc}"
                break
            report.discs.append(made)
        report.still_needing = _still_needing(ctx, report, evidence_for)
    return report


def _prepare_out(ctx: Context, out_dir: Path) -> None:
    """Make the output folder, refuse one inside the store's other folders, clear leftovers of killed runs."""
    inside = out_dir.resolve()
    root = ctx.root.resolve()
    if inside.is_relative_to(root) and not inside.is_relative_to(root / "discs"):
        raise UsageError(_("--out must not be inside the store, except its discs folder: {path}").format(path=out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(_("--out {path} is a file, not a folder").format(path=out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AvlogError(_("cannot create {path}: {reason}").format(path=out_dir, reason=exc.strerror)) from exc
    for stale in out_dir.glob(f".AVLOG_*.{registry.store_id(ctx)[:12]}.*.iso.part"):  # this store's only
        try:
            fd = os.open(stale, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a run in progress (of this store or another) owns it
        else:
            _clear_leftover(ctx, stale)
        finally:
            os.close(fd)


def _clear_leftover(ctx: Context, part: Path) -> None:
    """A killed run's ``.part``. Linked to its final name already, it is either a recorded disc (the run
    died after its commit: keep the image) or not (it died between link and commit: neither stays)."""
    final = part.with_name(part.name[1:].split(".")[0] + ".iso")
    with contextlib.suppress(OSError):
        if final.exists() and os.path.samefile(final, part):
            recorded = registry.by_volume_id(ctx, final.stem)
            if recorded is None or not _same_file(recorded["image_path"], final):
                final.unlink()
    part.unlink(missing_ok=True)


def _still_needing(ctx: Context, report: BurnReport, evidence_for: str | None) -> list[int]:
    """Clips that still lack copies after this run: one more copy for those on its discs (planned ones in a
    dry run), none for those the run did not reach."""
    if evidence_for is not None:
        return []
    need = ctx.settings.retention.disc_copies
    placed = {i for d in report.discs for i in d.clip_ids}
    return [s.clip["id"] for s in report.selected if s.copies + (s.clip["id"] in placed) < need]


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return True  # unknown: count the image against the store's disk, the careful side


def _same_file(a: str | Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _planned(volume_id: str, medium: Medium, disc: PlannedDisc) -> DiscResult:
    return DiscResult(
        volume_id,
        None,
        medium.name,
        disc.sectors * SECTOR,
        None,
        None,
        [i.clip_id for i in disc.items],
        disc.payload_bytes,
        disc.free_bytes,
        False,
    )


def _reasons(chosen: list[Selected]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    reasons = sorted({f["reason"] for s in chosen for f in s.flags})
    cases = sorted({c for s in chosen for c in s.cases})
    return tuple(reasons), tuple(cases)


def _make_disc(
    ctx: Context,
    medium: Medium,
    disc: PlannedDisc,
    chosen: list[Selected],
    paths: dict[int, str],
    out_dir: Path,
    evidence_for: str | None,
    group: str,
    index: int,
    count: int,
    progress: Progress | None,
) -> DiscResult:
    now = ctx.clock().astimezone(ctx.settings.tz).replace(microsecond=0)
    year = now.year
    seq = registry.next_seq(ctx, year)
    vol = registry.volume_id(year, seq)
    store = registry.store_id(ctx)
    reasons, cases = _reasons(chosen)
    evidence_case: dict[str, Any] | None = None
    evidence_case_id = None
    if evidence_for is not None:
        row = ctx.catalog.one("SELECT id, case_no, title FROM cases WHERE case_no = ?", [evidence_for])
        assert row is not None  # select() found it
        evidence_case_id = row.pop("id")
        evidence_case = row
    info = bag.DiscInfo(
        volume_id=vol,
        created=now.isoformat(),
        organisation=ctx.settings.organisation,
        made_by=ctx.actor,
        store=f"{ctx.host}:{ctx.root}",
        store_id=store,
        software=f"avlog {__version__}",
        purpose="evidence" if evidence_for else "archive",
        reasons=reasons,
        cases=cases,
        evidence_case=evidence_case,
        group=group,
        index=index,
        count=count,
        # The chain's head as the disc carries it: an anchor ``avlog audit verify --disc`` checks later.
        audit_head=anchor.current(ctx.catalog.db, now.isoformat()).to_json(),
    )
    disc_clips = [
        bag.DiscClip(paths[s.clip["id"]], s.clip["size"], s.clip["sha256"], s.clip["blake3"], s.entry)
        for s in sorted(chosen, key=lambda s: paths[s.clip["id"]])
    ]
    tag_files = bag.bag_files(info, disc_clips, now.date().isoformat())
    files = [
        DiscFile(paths[s.clip["id"]], s.clip["size"], s.when, source=ctx.objects.path(s.clip["blake3"])) for s in chosen
    ]
    files += [DiscFile(t.path, len(t.content), now, content=t.content) for t in tag_files]
    volume = Volume(vol, registry.volume_set_id(ctx), ctx.settings.organisation, ctx.actor, f"AVLOG {__version__}", now)
    for s in chosen:
        if not ctx.objects.exists(s.clip["blake3"]):
            raise IntegrityError(
                _("clip {id}'s stored copy is missing ({hex}); run avlog verify").format(
                    id=s.clip["id"], hex=s.clip["blake3"]
                )
            )
    image = Image(volume, files)
    sectors = image.sectors
    if sectors > medium.sectors:  # the plan's bound is an upper bound; this would be a defect in it
        image.close()
        raise AvlogError(
            _("disc {vol} would take {n} sectors, more than a {media} holds ({cap})").format(
                vol=vol, n=sectors, media=medium.name, cap=medium.sectors
            )
        )
    final = out_dir / f"{vol}.iso"
    part = out_dir / f".{vol}.{store[:12]}.{uuid.uuid4().hex[:8]}.iso.part"
    total = sectors * SECTOR
    try:
        # No image is begun below the catalog's reserve; one written on the store's own disk counts against it.
        ctx.objects.ensure_room(total if _same_disk(out_dir, ctx.root) else 0)
    except BaseException:
        image.close()
        raise
    linked = committed = False
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o440)
    except OSError as exc:
        image.close()
        raise AvlogError(_("cannot create {path}: {reason}").format(path=part, reason=exc.strerror)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the end: another run's clean-up leaves a live .part alone
        image.write(fd, part, progress(vol, "write", total) if progress else None)
        reading = read_medium(part, small_files=bag.BAG_FILES, progress=progress)
        expected = {f.path: (f.size, f.content) for f in files}
        clip_b3 = {paths[s.clip["id"]]: (s.clip["id"], s.clip["blake3"]) for s in chosen}
        bad = compare(reading, expected_files(expected, clip_b3))
        if bad or reading.volume_id != vol:
            details = "; ".join(b["problem_text"] for b in bad[:3]) or _("its volume id reads {v}").format(
                v=reading.volume_id
            )
            raise IntegrityError(
                _("image {vol} failed its read-back and was not kept: {details}").format(vol=vol, details=details)
            )
        row = {
            "volume_id": vol,
            "year": year,
            "seq": seq,
            "media": medium.name,
            "purpose": info.purpose,
            "evidence_case_id": evidence_case_id,
            "image_path": str(final),
            "image_bytes": reading.image_bytes,
            "image_sha256": reading.sha256,
            "image_blake3": reading.blake3,
            "payload_bytes": disc.payload_bytes,
            "clip_count": len(chosen),
            "reasons": json.dumps({"reasons": list(reasons), "cases": list(cases), "group": group}),
            "created_at": ctx.catalog.now(),
            "created_by": ctx.actor,
            "state": "image",
            "image_verified_at": ctx.catalog.now(),
            "image_verify_result": "ok",
        }
        clip_rows = [
            {
                "clip_id": s.clip["id"],
                "path": paths[s.clip["id"]],
                "blake3": s.clip["blake3"],
                "sha256": s.clip["sha256"],
                "size": s.clip["size"],
            }
            for s in chosen
        ]
        with ctx.catalog.change():
            disc_id = registry.add_disc(ctx, row, clip_rows)
            try:
                # A link, not a rename: it never replaces a file of that name (another store's image).
                os.link(part, final)
            except FileExistsError:
                raise AvlogError(
                    _("{path} exists already (another store's disc of the same number?); move it, or use --out").format(
                        path=final
                    )
                ) from None
            linked = True
            fsync_dir(out_dir)  # the final name is on the disk before the row that names it commits
        committed = True
    except BaseException:
        if linked and not committed:
            final.unlink(missing_ok=True)  # the commit failed after the link: no final name without a row
        raise
    finally:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        os.close(fd)
    return DiscResult(
        vol,
        final,
        medium.name,
        reading.image_bytes,
        reading.sha256,
        reading.blake3,
        [s.clip["id"] for s in chosen],
        disc.payload_bytes,
        (medium.sectors - sectors) * SECTOR,
        True,
        disc_id,
    )


# -- comparing a reading with what should be there ---------------------------------------------------


@dataclass(frozen=True)
class Expected:
    path: str
    size: int
    blake3: str
    clip_id: int | None


def expected_files(files: dict[str, tuple[int, bytes | None]], clips: dict[str, tuple[int, str]]) -> list[Expected]:
    result = []
    for path, (size, content) in files.items():
        if path in clips:
            clip_id, b3 = clips[path]
            result.append(Expected(path, size, b3, clip_id))
        else:
            assert content is not None
            result.append(Expected(path, size, blake3.blake3(content).hexdigest(), None))
    return result


def compare(reading: Reading, expected: list[Expected], *, also: Collection[str] | None = ()) -> list[Row]:
    """Differences between a reading and what the disc should hold; each names its file (and clip).

    A file neither expected nor in ``also`` is a difference; ``also=None`` lets any other file be."""
    bad: list[Row] = []
    for problem in reading.problems:
        bad.append({"path": None, "clip_id": None, "problem": "structure", "problem_text": problem})
    for e in expected:
        found = reading.files.get(e.path)
        who = _("clip {id} ({path})").format(id=e.clip_id, path=e.path) if e.clip_id is not None else e.path
        if found is None:
            bad.append(
                {
                    "path": e.path,
                    "clip_id": e.clip_id,
                    "problem": "missing",
                    "problem_text": _("{who} is missing").format(who=who),
                }
            )
        elif found != (e.size, e.blake3):
            bad.append(
                {
                    "path": e.path,
                    "clip_id": e.clip_id,
                    "problem": "mismatch",
                    "problem_text": _("{who} differs from the catalog").format(who=who),
                }
            )
    if also is not None:
        known = {e.path for e in expected} | set(also)
        for path in sorted(set(reading.files) - known):
            bad.append(
                {
                    "path": path,
                    "clip_id": None,
                    "problem": "unexpected",
                    "problem_text": _("{path} is not in the catalog's record of the disc").format(path=path),
                }
            )
    return bad
