"""One exception hierarchy; each class carries the exit code SPEC.md gives it.

The CLI turns any of these into one line on stderr and that exit code, in one
place (``avlog.cli``). Core code raises them with a message already passed
through ``_()``.
"""

from __future__ import annotations


class AvlogError(Exception):
    """A failure the user can act on: one clear line, exit 1."""

    exit_code = 1


class UsageError(AvlogError):
    """A bad option or argument (exit 2)."""

    exit_code = 2


class IntegrityError(AvlogError):
    """An integrity problem was found: a missing or altered object, a broken audit chain (exit 3)."""

    exit_code = 3


class PartialFailure(AvlogError):
    """Some items failed and the rest succeeded (exit 4); each failure was named already."""

    exit_code = 4


class StoreError(AvlogError):
    """The store is missing, unreadable or not an avlog store."""


class SettingsError(AvlogError):
    """``avlog.toml`` is unreadable or breaks a rule (for example a retention floor under Art. 19)."""


class NotFound(AvlogError):
    """A clip, device or other catalog entry named on the command line does not exist."""


class DeviceNotRegistered(AvlogError):
    """A recorder that is not in the device registry (Art. 5, 16)."""


class SourceError(AvlogError):
    """The source to ingest from cannot be opened or read."""


class DiskFull(AvlogError):
    """The store's filesystem has no room left."""
