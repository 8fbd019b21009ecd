"""Clearing a recorder's card after ingest (Art. 18: officers keep no private copies).

Nothing is deleted unless every recording of the run is committed in the
catalog, its object re-reads from the store's disk with both digests right,
and the file on the card still has the size and BLAKE3 it had when it was
copied. Then exactly those recordings are deleted, nothing else, and the
deletion is audited. Any doubt deletes nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from avlog.context import Context
from avlog.errors import PartialFailure
from avlog.i18n import _
from avlog.ingest.devices import read_mounts
from avlog.ingest.pipeline import GuardedReader, SourceReadError
from avlog.ingest.report import IngestReport
from avlog.ingest.sources import CardImageSource, FolderSource, Source, SourceEntry
from avlog.store.hashing import copy_and_hash
from avlog.store.objects import fsync_dir


class ClearRefused(PartialFailure):
    """The card was not cleared: the reason says which doubt stopped it (exit 4)."""


class ClearFailed(ClearRefused):
    """Deleting went wrong part-way (a card pulled out, a tool failing); what was asked is audited."""


@dataclass
class ClearReport:
    deleted: list[str] = field(default_factory=list)


def _refuse(reason: str) -> ClearRefused:
    return ClearRefused(_("the card was not cleared, nothing was deleted: {reason}").format(reason=reason))


def _check_writable(source: Source, confirmed: bool) -> None:
    if isinstance(source, FolderSource):
        if not os.access(source.root, os.W_OK):
            raise _refuse(_("the card is not mounted read-write"))
        return
    if isinstance(source, CardImageSource) and source.kind == "fat":
        if not confirmed:
            raise _refuse(_("the card is read raw; confirm the deletion with --yes"))
        if shutil.which("mdel") is None:
            raise _refuse(_("deleting from a raw FAT card needs mtools (mdel)"))
        return
    raise _refuse(_("an exFAT card read raw cannot be cleared; mount it read-write and run again"))


def _prove_safe(ctx: Context, source: Source, report: IngestReport) -> dict[str, SourceEntry]:
    """Every recording is committed, sound in the store, and unchanged on the card; returns their entries."""
    if report.failed:
        raise _refuse(_("{n} file(s) failed to ingest").format(n=report.failed))
    if report.stopped or report.aborted:
        raise _refuse(_("the ingest ended before every file on the card was read"))
    on_card = {e.path: e for e in source.entries() if not e.special and e.error is None}
    for item in report.items:
        assert item.blake3 is not None
        clip = ctx.catalog.clip_by_key(report.device_serial, item.original_path, item.blake3)
        if clip is None or clip["state"] != "stored":
            raise _refuse(_("{path} is not committed in the catalog").format(path=item.original_path))
        problem = ctx.objects.check(item.blake3, clip["size"], clip["sha256"])
        if problem is not None:
            state = _("missing") if problem == "missing" else _("altered")
            raise _refuse(_("the store's copy of {path} is {state}").format(path=item.original_path, state=state))
        entry = on_card.get(item.original_path)
        if entry is None or entry.size != clip["size"]:
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
        try:
            with source.open(entry) as raw:
                again = copy_and_hash(GuardedReader(raw, entry.path), None)  # type: ignore[arg-type]
        except (OSError, EOFError, SourceReadError) as exc:
            raise _refuse(
                _("{path} cannot be read again: {reason}").format(path=item.original_path, reason=exc)
            ) from exc
        if (again.blake3, again.sha256, again.size) != (item.blake3, clip["sha256"], clip["size"]):
            raise _refuse(_("{path} changed on the card since it was read").format(path=item.original_path))
    return on_card


def _short_path(entry: SourceEntry) -> str:
    """The file's 8.3 path on a FAT card: mtools reads ``[`` ``*`` ``?`` in a long name as a pattern,
    and a pattern could delete a file that was never ingested. Short names cannot hold them."""
    parts = []
    node = entry.handle
    while node is not None and getattr(node, "parent", None) is not None:
        parts.append(node.short_name)
        node = node.parent
    path = "::/" + "/".join(reversed(parts))
    if any(c in path for c in "[]*?\\"):
        raise _refuse(_("{path} has a name mtools would read as a pattern").format(path=entry.path))
    return path


def _sysfs_family(major: int, minor: int) -> set[tuple[int, int]]:
    """A block device with its partitions, or a partition with its disk and the disk's other partitions."""

    def dev_of(folder: Path) -> tuple[int, int] | None:
        try:
            text = (folder / "dev").read_text().strip()
        except OSError:
            return None
        a, b = text.split(":")
        return int(a), int(b)

    family = {(major, minor)}
    base = Path(f"/sys/dev/block/{major}:{minor}")
    try:
        base = base.resolve(strict=True)
    except OSError:
        return family
    disk = base.parent if (base / "partition").exists() else base
    for folder in [disk, *disk.iterdir()]:
        number = dev_of(folder) if folder.is_dir() else None
        if number is not None:
            family.add(number)
    return family


def _loop_backed(path: str) -> bool:
    """Whether an image file is attached to a loop device (and so possibly mounted through it)."""
    target = os.path.realpath(path)
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if os.path.realpath(backing.read_text().strip()) == target:
                return True
        except OSError:
            continue
    return False


def _refuse_if_mounted(source: CardImageSource) -> None:
    """Never write raw into a filesystem the kernel may have mounted: the node, its disk or partitions, a loop."""
    try:
        st = os.stat(source.location)
    except OSError:
        return
    if stat.S_ISBLK(st.st_mode):
        mounted = set(read_mounts())
        if _sysfs_family(os.major(st.st_rdev), os.minor(st.st_rdev)) & mounted:
            raise _refuse(_("the card is mounted; clear it through its mount point"))
    elif _loop_backed(source.location):
        raise _refuse(_("the card image is attached to a loop device; detach it first"))


def _delete(source: Source, paths: list[str], targets: list[str]) -> None:
    if isinstance(source, FolderSource):
        folders = set()
        for path in paths:
            target = source.root / path
            try:
                target.unlink()
            except OSError as exc:
                raise ClearFailed(
                    _("the card could not be cleared completely: {path}: {reason}").format(
                        path=path, reason=exc.strerror
                    )
                ) from exc
            folders.add(target.parent)
        for folder in folders:
            fsync_dir(folder)
        return
    assert isinstance(source, CardImageSource)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    image = f"{source.location}@@{source.offset}" if source.offset else source.location
    done = subprocess.run(["mdel", "-i", image, *targets], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ClearFailed(
            _("the card could not be cleared completely (mdel): {reason}").format(
                reason=" ".join((done.stderr or done.stdout).split())
            )
        )
    subprocess.run(["sync"], check=False)


def clear_card(ctx: Context, source: Source, report: IngestReport, *, confirmed: bool) -> ClearReport:
    """Delete the run's recordings from the card once each is proven safe in the store."""
    _check_writable(source, confirmed)
    on_card = _prove_safe(ctx, source, report)
    paths = [item.original_path for item in report.items]
    targets = []
    if isinstance(source, CardImageSource):
        _refuse_if_mounted(source)
        targets = [_short_path(on_card[p]) for p in paths]
    files = [{"path": i.original_path, "blake3": i.blake3, "size": i.size} for i in report.items]
    # Recorded before the first file goes: a crash mid-deletion still leaves its trace (Art. 18, 27).
    with ctx.catalog.change():
        ctx.catalog.audit(
            "device.clear.start",
            f"device:{report.device_serial}",
            {"ingest": report.ingest_id, "source": source.location, "files": files},
        )
    try:
        _delete(source, paths, targets)
    except BaseException as exc:
        with ctx.catalog.change():
            ctx.catalog.audit(
                "device.clear.failed",
                f"device:{report.device_serial}",
                {"ingest": report.ingest_id, "source": source.location, "files": files, "error": str(exc)},
            )
        raise
    with ctx.catalog.change():
        ctx.catalog.audit(
            "device.clear",
            f"device:{report.device_serial}",
            {"ingest": report.ingest_id, "source": source.location, "files": files},
        )
    return ClearReport(deleted=paths)
