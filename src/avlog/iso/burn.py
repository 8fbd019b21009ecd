"""Writing a verified image to a disc with xorriso.

``DEVICE`` is an optical drive (``/dev/sr0``), or, in xorriso's own notation, ``stdio:PATH`` for any
other file or block device (a disc duplicator that shows as a disk, a test device). A plain path that is
not an optical drive is refused: writing an image over a hard disk by a typo must not be possible.
After writing, the caller reads the disc back (:func:`avlog.iso.check.verify_disc`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from avlog.errors import AvlogError, SourceError, UsageError
from avlog.i18n import _
from avlog.iso.verify import is_optical

STDIO = "stdio:"


def read_path(device: str) -> Path:
    """Where the written disc is read back from."""
    return Path(device[len(STDIO) :]) if device.startswith(STDIO) else Path(device)


def check_device(device: str) -> None:
    if device.startswith(STDIO):
        if not device[len(STDIO) :]:
            raise UsageError(_("stdio: must be followed by a path"))
        return
    path = Path(device)
    if not path.exists():
        raise SourceError(
            _(
                "no disc drive at {device}; without a burner, burn the image with any burning software, "
                "then check the disc with: avlog disc verify DEVICE"
            ).format(device=device)
        )
    if not is_optical(path):
        raise UsageError(
            _("{device} is not an optical drive; to write to another device or a file, say stdio:{device}").format(
                device=device
            )
        )


def _xorriso() -> str:
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise AvlogError(
            _(
                "xorriso is not installed (apt-get install xorriso); or burn the image with any burning software, "
                "then check the disc with: avlog disc verify DEVICE"
            )
        )
    return xorriso


def check_burner(device: str) -> None:
    """Everything a burn needs that can be checked before any image is written: the drive and xorriso."""
    check_device(device)
    _xorriso()


def burn(image: Path, device: str) -> None:
    """Write ``image`` to ``device`` with xorriso; raise with the reason xorriso gave when it fails."""
    check_device(device)
    xorriso = _xorriso()
    result = subprocess.run(
        [xorriso, "-as", "cdrecord", "-v", f"dev={device}", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        # xorriso ends with "aborting : -abort_on 'FAILURE' encountered"; the reason is the first complaint.
        reasons = [line for line in lines if (" SORRY " in line or " FAILURE " in line) and "-abort_on" not in line]
        detail = (reasons or lines or [_("exit status {n}").format(n=result.returncode)])[0]
        raise AvlogError(
            _("burning {image} to {device} failed: {detail}").format(image=image, device=device, detail=detail)
        )
