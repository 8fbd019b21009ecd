"""The Typer application, its error handling (one line, SPEC.md's exit code) and shared helpers."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from avlog import __version__
from avlog.context import Context, default_store_path, open_context
from avlog.errors import (
    AvlogError,
)
from avlog.i18n import _

DEVICE_KINDS = ("bodycam", "camera", "audio", "terminal", "fixed")


COMMAND_ORDER = (
    "init",
    "device",
    "ingest",
    "watch",
    "ls",
    "show",
    "flag",
    "unflag",
    "case",
    "hold",
    "retention-sweep",
    "burn-iso",
    "disc",
    "verify",
    "audit",
    "demo",
)


def _is_click(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's (vendored by typer or not) exception class ``name`` or a subclass of it."""
    return any(cls.__name__ == name and cls.__module__.startswith(("typer", "click")) for cls in type(exc).__mro__)


def _fail(message: str, code: int, wants_json: bool) -> SystemExit:
    """SPEC.md's failure: with --json, one document on stdout saying what went wrong (unless the command
    printed its own); always the one ``avlog:`` line on stderr; then the exit code."""
    from avlog import render

    _fail_json(message, code, wants_json)
    render.error_line(message)
    return SystemExit(code)


def _fail_json(message: str, code: int, wants_json: bool) -> None:
    """With --json, the failure's document on stdout, unless the command printed its own."""
    from avlog import render

    if wants_json and not render.json_emitted:
        try:
            render.emit_json({"ok": False, "error": message, "exit_code": code})
        except OSError:
            render.drop_stdout()  # stdout itself failed (a full disk, a closed pipe): the line on stderr says why


def _usage_failure(exc: Exception, wants_json: bool) -> SystemExit:
    """A usage error found by the parser (an unknown option, a bad or missing value) as one line, exit 2."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "avlog"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return _fail(
        _("{reason} (see: {command} --help)").format(reason=message.strip(), command=command),
        int(getattr(exc, "exit_code", 2)),
        wants_json,
    )


def _is_usage_error(exc: BaseException) -> bool:
    # With no arguments a group shows its help (also a "usage error" to click): that stays as it is.
    return _is_click(exc, "UsageError") and not _is_click(exc, "NoArgsIsHelpError")


class AvlogGroup(TyperGroup):
    """Turns every :class:`AvlogError`, usage error and unexpected exception into one line on stderr and
    SPEC.md's exit code, in one place; with ``--json``, also into one JSON document on stdout."""

    def list_commands(self, ctx: Any) -> list[str]:
        """The order a new user meets the commands in, rather than the order they were defined."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER), n))

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Parsing the top-level options (and a sub-group's) happens here, before :meth:`invoke`."""
        from avlog import render

        if parent is None:
            render.json_emitted = False  # a new run (tests run many in one process)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except Exception as exc:
            if _is_usage_error(exc):
                raise _usage_failure(exc, "--json" in args) from None
            raise

    def invoke(self, ctx: Any) -> Any:

        wants_json = "--json" in [*getattr(ctx, "_protected_args", []), *getattr(ctx, "protected_args", []), *ctx.args]

        try:
            return super().invoke(ctx)
        except AvlogError as exc:
            raise _fail(str(exc), exc.exit_code, wants_json) from None
        except sqlite3.DatabaseError as exc:
            raise _fail(_("the catalog cannot be used: {reason}").format(reason=exc), 1, wants_json) from None
        except KeyboardInterrupt:
            raise _fail(_("interrupted"), 130, wants_json) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            message = (
                _("{reason}: {path}").format(reason=reason, path=exc.filename)
                if exc.filename
                else _("cannot write or read: {reason}").format(reason=reason)
            )
            raise _fail(message, 1, wants_json) from None
        except Exception as exc:
            if _is_usage_error(exc):
                raise _usage_failure(exc, wants_json) from None
            # Typer's own exits and help (click's, vendored or not) keep their meaning.
            if type(exc).__module__.startswith(("typer", "click")):
                raise
            message = _("internal error: {kind}: {reason} (run again with AVLOG_DEBUG=1 for details)").format(
                kind=type(exc).__name__, reason=exc
            )
            if os.environ.get("AVLOG_DEBUG"):
                _fail_json(message, 1, wants_json)
                raise
            raise _fail(message, 1, wants_json) from None


def _examples(*lines: str) -> str:
    return _("Examples:") + "\n\n" + "\n\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    cls=AvlogGroup,
    help=_("avlog: verified ingest and long-term keeping of law-enforcement audio-video recordings."),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    epilog=_examples("avlog init", "avlog device register BC-0001 --custodian 张三 --unit 一中队", "avlog demo"),
)
device_app = typer.Typer(
    cls=AvlogGroup,
    help=_("Register, list and scan recorders; each has a custodian and a unit (Art. 6, 10)."),
    no_args_is_help=True,
    epilog=_examples("avlog device register BC-0001 --custodian 张三 --unit 一中队", "avlog device list"),
)
audit_app = typer.Typer(
    cls=AvlogGroup,
    help=_("Read and check the tamper-evident audit log."),
    no_args_is_help=True,
    epilog=_examples("avlog audit verify", "avlog audit log --subject clip:12"),
)
app.add_typer(device_app, name="device", short_help=_("Register, list and scan recorders and their custodians."))
app.add_typer(audit_app, name="audit", short_help=_("Read and check the tamper-evident audit log."))

JsonOpt = Annotated[bool, typer.Option("--json", help=_("Print one JSON document on stdout instead of tables."))]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avlog {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            readable=False,  # an unreadable store is reported by avlog in one line, not by the parser
            help=_("The store folder (default: $AVLOG_STORE, else the user data folder)."),
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help=_("Show the version and exit."))
    ] = False,
) -> None:
    ctx.obj = {"store": store}


def _store_path(ctx: typer.Context) -> Path:
    root = ctx.find_root().obj or {}
    return (root.get("store") or default_store_path()).expanduser()


def _open(ctx: typer.Context) -> Context:
    return open_context(_store_path(ctx))


# -- helpers ----------------------------------------------------------------------------------------


class _closing:
    def __init__(self, context: Context):
        self.context = context

    def __enter__(self) -> Context:
        return self.context

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def main() -> None:
    """The ``avlog`` console script."""
    # The last safety net: whatever reaches stdout or stderr unescaped (a name that is not UTF-8, a
    # terminal that cannot show a character) is written as a backslash escape, never a crash halfway.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    app()
