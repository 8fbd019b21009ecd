"""The command line: parse, call one core function, render. Errors become one line and an exit code here."""

from avlog.cli import device_cmds, disc_cmds, ingest_cmds, marks_cmds, retention_cmds, store_cmds  # noqa: F401  (each module registers its commands)
from avlog.cli.app import app, main

__all__ = ["app", "main"]
