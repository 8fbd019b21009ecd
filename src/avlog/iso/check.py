"""``disc verify``: read an image or a disc back and compare everything on it with what should be there.

A disc in the registry is compared with the registry: every clip's size and BLAKE3, the image's own
BLAKE3 over its recorded length (so a changed byte anywhere is found, not only in a clip), and the bag's
files with the bag's manifests. A disc from elsewhere (another store, a disc found in a cupboard) is
compared with what it says of itself: its catalog.json and its manifests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avlog.context import Context
from avlog.errors import IntegrityError, NotFound
from avlog.i18n import _
from avlog.iso import bag, registry
from avlog.iso.archive import Expected, compare
from avlog.iso.verify import Progress, Reading, is_optical, read_medium

Row = dict[str, Any]


@dataclass
class DiscCheck:
    source: str
    medium: str  # image | disc
    volume_id: str
    disc: Row | None  # the registry's row; None for a disc from elsewhere
    reading: Reading | None
    bad: list[Row] = field(default_factory=list)
    checked_files: int = 0
    recorded: bool = False  # the result went into the registry

    @property
    def ok(self) -> bool:
        return not self.bad


def _target(ctx: Context, target: str) -> tuple[Path, Row | None]:
    """An image path, a device, or a disc of the registry (its id or volume id: its image file)."""
    path = Path(target)
    if path.exists():
        return path, None
    if target.strip().isdigit() or registry.parse_volume_id(target):
        disc = registry.resolve(ctx, target)
        image = Path(disc["image_path"]) if disc["image_path"] else None
        if image is None or not image.exists():
            raise NotFound(
                _(
                    "the image of disc {vol} is no longer at {path}; verify the disc itself, "
                    "for example: avlog disc verify /dev/sr0"
                ).format(vol=disc["volume_id"], path=image)
            )
        return image, disc
    raise NotFound(_("{target} is neither a disc of the registry nor an image or a drive").format(target=target))


def _bag_problems(reading: Reading) -> list[Row]:
    """The bag's own files against its manifests (the tag manifest covers the manifests)."""
    bad: list[Row] = []
    contents = reading.contents
    for manifest_name, scope in (("tagmanifest-sha256.txt", None), ("manifest-sha256.txt", "data/")):
        manifest = contents.get(manifest_name)
        if manifest is None:
            bad.append(
                {
                    "path": manifest_name,
                    "clip_id": None,
                    "problem": "missing",
                    "problem_text": _("{path} is missing").format(path=manifest_name),
                }
            )
            continue
        for path, digest in bag.parse_manifest(manifest).items():
            if scope and path not in bag.BAG_FILES:
                continue  # clips are checked by BLAKE3 against the catalog or catalog.json
            data = contents.get(path)
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                bad.append(
                    {
                        "path": path,
                        "clip_id": None,
                        "problem": "missing" if data is None else "mismatch",
                        "problem_text": _("{path} does not match {manifest}").format(path=path, manifest=manifest_name),
                    }
                )
    return bad


def verify_disc(ctx: Context, target: str, *, progress: Progress | None = None) -> DiscCheck:
    path, disc = _target(ctx, target)
    try:
        reading = read_medium(path, small_files=bag.BAG_FILES, progress=progress)
    except IntegrityError as exc:
        if disc is not None:
            registry.record_verification(
                ctx,
                disc,
                medium="image",
                source=str(path),
                result="unreadable",
                bad=[{"problem": "unreadable", "detail": str(exc)}],
            )
        raise
    # A disc is read from a drive: an optical one, or any block device where the settings say so.
    from_drive = reading.is_device and (ctx.settings.read_back_drives == "any" or is_optical(path))
    medium = "disc" if from_drive else "image"
    record = disc is not None or from_drive
    if disc is None:
        candidate = registry.by_volume_id(ctx, reading.volume_id)
        if candidate is not None and reading.volume_set_id == registry.volume_set_id(ctx):
            disc = candidate  # this store's disc (another store numbers its discs alike)
            if not from_drive and candidate["image_path"]:
                # The registry's own image file is recorded; a copy of it elsewhere is only reported.
                with contextlib.suppress(OSError):
                    record = os.path.samefile(path, candidate["image_path"])
    check = DiscCheck(str(path), medium, reading.volume_id, disc, reading)
    if disc is not None:
        clips = registry.disc_clips(ctx, disc["id"])
        expected = [Expected(c["path"], c["size"], c["blake3"], c["clip_id"]) for c in clips]
        bad = compare(reading, expected, also=bag.BAG_FILES)  # the bag's files: checked by its manifests
        bad += _bag_problems(reading)
        if reading.image_bytes != disc["image_bytes"] or reading.blake3 != disc["image_blake3"]:
            bad.append(
                {
                    "path": None,
                    "clip_id": None,
                    "problem": "image",
                    "problem_text": _("the image's bytes differ from those recorded when it was made"),
                }
            )
        check.bad = bad
        check.checked_files = len(reading.files)
        result = "ok" if not bad else "mismatch"
        stored = [{k: v for k, v in b.items() if k != "problem_text"} for b in bad]
        if record:
            check.disc = registry.record_verification(
                ctx, disc, medium=medium, source=str(path), result=result, bad=stored
            )
        check.recorded = record
        return check
    # A disc this store did not make: compare it with its own catalog.json and manifests.
    catalog = reading.contents.get("data/catalog.json")
    expected = []
    if catalog is None:
        check.bad.append(
            {
                "path": "data/catalog.json",
                "clip_id": None,
                "problem": "missing",
                "problem_text": _("data/catalog.json is missing: not an avlog disc"),
            }
        )
    else:
        try:
            entries = json.loads(catalog)["clips"]
            expected = [Expected(e["path"], int(e["size"]), e["blake3"], e.get("clip_id")) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            check.bad.append(
                {
                    "path": "data/catalog.json",
                    "clip_id": None,
                    "problem": "mismatch",
                    "problem_text": _("data/catalog.json cannot be read: {reason}").format(reason=exc),
                }
            )
    check.bad += compare(reading, expected, also=None) + _bag_problems(reading)
    check.checked_files = len(reading.files)
    return check
