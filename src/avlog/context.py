"""The context handed to every core function: where the store is, its settings, who acts, what time it is."""

from __future__ import annotations

import fcntl
import os
import pwd
import socket
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from avlog import __version__
from avlog.errors import AvlogError, IntegrityError, StoreError, UsageError
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


#: The longest name taken for the person acting.
ACTOR_MAX = 64


def process_login() -> str:
    """The account this process runs as, from the operating system (never from the environment, which a
    person sets at will): recorded beside the actor on every change."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid-{os.geteuid()}"


def check_actor(name: str) -> str:
    """A person's name as the audit log records it: printable, one line, at most ``ACTOR_MAX`` characters."""
    # Checked before anything is stripped: a control character at either end is refused, never dropped.
    hidden = any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in name)
    name = name.strip(" ")
    if hidden or not name or len(name) > ACTOR_MAX:
        raise UsageError(
            _(
                "AVLOG_USER must be a person's name: one line of at most {n} printable characters, "
                "without control characters"
            ).format(n=ACTOR_MAX)
        )
    return name


def default_actor() -> str:
    """``$AVLOG_USER``, else the login name: the person recorded on every change (the login is recorded too)."""
    env = os.environ.get("AVLOG_USER")
    if env:
        return check_actor(env)
    return process_login()


@dataclass(frozen=True)
class Context:
    root: Path
    settings: Settings
    catalog: Catalog
    objects: ObjectStore
    actor: str
    clock: Callable[[], datetime] = field(default=system_clock)
    host: str = field(default_factory=socket.gethostname)
    login: str = field(default_factory=process_login)

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


def _holds_objects(root: Path) -> bool:
    """Whether ``root/objects`` holds at least one object file (stops at the first)."""
    try:
        with os.scandir(root / "objects") as subs:
            for sub in subs:
                if sub.is_dir(follow_symlinks=False) and len(sub.name) == 2:
                    with os.scandir(sub.path) as files:
                        if any(True for _f in files):
                            return True
    except (NotADirectoryError, FileNotFoundError):
        return False
    except OSError:
        return True  # objects/ cannot be listed: assume the worst
    return False


def _catalog_begins(path: Path) -> bool:
    """Whether the catalog exists with its first audit entry, ``store.init``, read without changing it."""
    try:
        if path.stat().st_size == 0:
            return False
    except FileNotFoundError:
        return False
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return True  # unreadable: the catalog's own open names the cause
    try:
        row = conn.execute("SELECT action FROM audit WHERE seq = 1").fetchone()
    except sqlite3.OperationalError as exc:
        return "no such table" not in str(exc)
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()
    return row is not None and row[0] == "store.init"


def refuse_orphaned(root: Path) -> None:
    """Refuse a store whose catalog is gone, empty or cut off at its start beside objects that hold evidence:
    taking it for a new store would hide every recording in objects/ (Art. 24, 27)."""
    if _catalog_begins(root / CATALOG_NAME) or not _holds_objects(root):
        return
    raise IntegrityError(
        _(
            "the catalog of the store at {path} is missing, empty or lacks its first entry, but objects/ holds "
            "recordings: restore catalog.sqlite from a backup, or rebuild the store by ingesting again from the "
            "discs and cards (see docs/store-format.md, section Restoring a lost catalog); nothing was changed"
        ).format(path=root)
    )


def init_store(root: Path, *, actor: str | None = None, clock: Callable[[], datetime] = system_clock) -> bool:
    """Create the store layout of SPEC.md at ``root``; return False when it existed already (idempotent)."""
    actor = actor or default_actor()
    root = root.absolute()
    refuse_orphaned(root)
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
    catalog = Catalog(root / CATALOG_NAME, actor=actor, clock=clock, login=process_login())
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
    refuse_orphaned(root)
    if not present:
        raise StoreError(_("no avlog store at {path}; create one with: avlog --store {path} init").format(path=root))
    objects = root / "objects"
    if not objects.is_dir():
        # Named as the cause, rather than every recording reported missing or altered one by one.
        message = (
            _("{path} is not a folder: the store's recordings are not where they belong; restore it from a backup")
            if objects.exists() or objects.is_symlink()
            else _("{path} is missing: the store's recordings are not where they belong; restore it from a backup")
        )
        raise IntegrityError(message.format(path=objects))
    settings = load_settings(root / SETTINGS_NAME)
    actor = actor or default_actor()
    login = process_login()
    catalog = Catalog(root / CATALOG_NAME, actor=actor, clock=clock, login=login)
    return Context(
        root=root,
        settings=settings,
        catalog=catalog,
        objects=ObjectStore(root, reserve_mb=settings.reserve_mb),
        actor=actor,
        clock=clock,
        login=login,
    )
