"""The context handed to every core function: where the store is, its settings, who acts, what time it is."""

from __future__ import annotations

import fcntl
import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from avlog import __version__
from avlog.errors import AvlogError, StoreError
from avlog.i18n import _
from avlog.settings import DEFAULT_TOML, Settings, load_settings
from avlog.store.catalog import Catalog
from avlog.store.objects import ObjectStore
from avlog.textsafe import utf8_safe

CATALOG_NAME = "catalog.sqlite"
SETTINGS_NAME = "avlog.toml"


def system_clock() -> datetime:
    return datetime.now(UTC)


def default_store_path() -> Path:
    """``$AVLOG_STORE``, else the platform's user data folder."""
    env = os.environ.get("AVLOG_STORE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("avlog", appauthor=False))


def default_actor() -> str:
    """``$AVLOG_USER``, else the login name: recorded on every change."""
    env = os.environ.get("AVLOG_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


@dataclass(frozen=True)
class Context:
    root: Path
    settings: Settings
    catalog: Catalog
    objects: ObjectStore
    actor: str
    clock: Callable[[], datetime] = field(default=system_clock)
    host: str = field(default_factory=socket.gethostname)

    def close(self) -> None:
        self.catalog.close()


@contextmanager
def store_lock(ctx: Context, name: str, busy: Callable[[Path], AvlogError]) -> Iterator[None]:
    """Hold ``STORE/tmp/NAME`` exclusively while the block runs; if another process holds it, raise
    ``busy(path)`` at once instead of waiting. The kernel releases the lock when its holder dies."""
    path = ctx.root / "tmp" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(path) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def init_store(root: Path, *, actor: str | None = None, clock: Callable[[], datetime] = system_clock) -> bool:
    """Create the store layout of SPEC.md at ``root``; return False when it existed already (idempotent)."""
    actor = actor or default_actor()
    root = root.absolute()
    try:
        # Evidence is confidential (Art. 3-4, 25): the owner and the avlog group only.
        root.mkdir(mode=0o750, parents=True, exist_ok=True)
        for sub in ("objects", "tmp", "discs"):
            (root / sub).mkdir(mode=0o750, exist_ok=True)
        settings_path = root / SETTINGS_NAME
        if not settings_path.exists():
            settings_path.write_text(DEFAULT_TOML, encoding="utf-8")
        load_settings(settings_path)
    except PermissionError as exc:
        raise StoreError(_("cannot create a store at {path}: permission denied").format(path=root)) from exc
    except OSError as exc:
        raise StoreError(_("cannot create a store at {path}: {reason}").format(path=root, reason=exc.strerror)) from exc
    catalog = Catalog(root / CATALOG_NAME, actor=actor, clock=clock)
    try:
        if catalog.one("SELECT 1 FROM audit WHERE action = 'store.init'"):
            return False
        with catalog.change():
            catalog.audit("store.init", "store", {"path": utf8_safe(str(root)), "avlog": __version__})
        return True
    finally:
        catalog.close()


def open_context(
    root: Path | None = None,
    *,
    actor: str | None = None,
    clock: Callable[[], datetime] = system_clock,
) -> Context:
    """Open an existing store; a missing one is a clear error, never silently created."""
    root = (root or default_store_path()).expanduser().absolute()
    try:
        present = (root / CATALOG_NAME).is_file()
    except PermissionError as exc:
        raise StoreError(_("cannot open the store at {path}: permission denied").format(path=root)) from exc
    if not present:
        raise StoreError(_("no avlog store at {path}; create one with: avlog --store {path} init").format(path=root))
    settings = load_settings(root / SETTINGS_NAME)
    actor = actor or default_actor()
    catalog = Catalog(root / CATALOG_NAME, actor=actor, clock=clock)
    return Context(root=root, settings=settings, catalog=catalog, objects=ObjectStore(root), actor=actor, clock=clock)
