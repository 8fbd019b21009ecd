"""The Typer application, its error handling (one line, SPEC.md's exit code) and shared helpers."""

from __future__ import annotations

import os
import sqlite3
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


class AvlogGroup(TyperGroup):
    """Turns every :class:`AvlogError` into one line on stderr and SPEC.md's exit code, in one place."""

    def list_commands(self, ctx: Any) -> list[str]:
        """The order a new user meets the commands in, rather than the order they were defined."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER), n))

    def invoke(self, ctx: Any) -> Any:
        from avlog import render

        wants_json = "--json" in [*getattr(ctx, "protected_args", []), *ctx.args]
        render.json_emitted = False

        def fail(message: str, code: int) -> SystemExit:
            if wants_json and not render.json_emitted:
                # A script asked for one document: it gets one, saying what went wrong, even on failure.
                render.emit_json({"ok": False, "error": message, "exit_code": code})
            render.error_line(message)
            return SystemExit(code)

        try:
            return super().invoke(ctx)
        except AvlogError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except sqlite3.DatabaseError as exc:
            raise fail(_("the catalog cannot be used: {reason}").format(reason=exc), 1) from None
        except KeyboardInterrupt:
            raise fail(_("interrupted"), 130) from None
        except OSError as exc:
            raise fail(
                _("{reason}: {path}").format(reason=exc.strerror or type(exc).__name__, path=exc.filename or ""), 1
            ) from None
        except Exception as exc:
            # Typer's own usage errors and exits (click's, vendored or not) keep their meaning.
            if os.environ.get("AVLOG_DEBUG") or type(exc).__module__.startswith(("typer", "click")):
                raise
            render.error_line(
                _("internal error: {kind}: {reason} (run again with AVLOG_DEBUG=1 for details)").format(
                    kind=type(exc).__name__, reason=exc
                )
            )
            raise SystemExit(1) from None


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
    app()
