"""What an ingest reports: per-file outcomes, the run's summary, and the progress callbacks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from avlog.ingest import timeline


class IngestProgress(Protocol):
    """What the core tells a progress display; every method may be a no-op."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def file(self, path: str, size: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    def begin(self, files: int, total_bytes: int) -> None:
        pass

    def file(self, path: str, size: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass
class ItemResult:
    original_path: str
    size: int
    media_kind: str | None = None
    status: str = "failed"  # stored | duplicate | rehandover | failed
    error: str | None = None
    blake3: str | None = None
    sha256: str | None = None
    clip_id: int | None = None
    new_clip: bool = False
    repaired: bool = False  # this copy replaced a damaged or missing object
    time_source: str | None = None
    probe_error: str | None = None
    # The card's entry this item was read from (its name as stored, what identifies it for clearing).
    entry: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(replace(self, entry=None))
        del doc["entry"]
        return doc


@dataclass
class IngestReport:
    ingest_id: int
    device_serial: str
    custodian: str | None
    registered: bool
    source: str
    source_kind: str
    started_at: datetime
    finished_at: datetime | None = None
    items: list[ItemResult] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    findings: list[timeline.Finding] = field(default_factory=list)
    aborted: str | None = None  # why the run stopped early (a full disk)
    stopped: bool = False  # asked to stop (SIGTERM in watch mode); the rest waits for the next run
    plugged_at: datetime | None = None
    clock: timeline.ClockCheck | None = None

    @property
    def stored(self) -> int:
        return sum(1 for i in self.items if i.status == "stored")

    @property
    def duplicates(self) -> int:
        return sum(1 for i in self.items if i.status == "duplicate")

    @property
    def rehandovers(self) -> int:
        """Files whose clip was purged before: recorded, not stored again."""
        return sum(1 for i in self.items if i.status == "rehandover")

    @property
    def failed(self) -> int:
        return sum(1 for i in self.items if i.status == "failed")

    @property
    def bytes_stored(self) -> int:
        return sum(i.size for i in self.items if i.status == "stored")

    @property
    def status(self) -> str:
        if self.failed == 0:
            return "stopped" if self.stopped else "done"
        return "partial" if self.failed < len(self.items) else "failed"
