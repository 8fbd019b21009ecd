"""Checks of what the command line hands to avlog, made while it is parsed: a bad value is a usage error
(exit 2) naming the argument, before anything is opened or written.

- Text that is stored in the catalog (serials, custodians, units, labels, case numbers and titles, notes,
  reasons, disc locations) must be valid UTF-8 and hold no control or invisible character
  (:func:`avlog.textsafe.refused_character`): what a report shows must be exactly what was stored, on
  one line. This holds for free-text notes too: tabs and line breaks are refused, as every record is
  shown on one line. Use ``callback=stored_text``.
- Text that only names something to look up (a clip reference, a device, a case, a time) must be valid
  UTF-8: the catalog holds nothing else. Use ``callback=key_text``.
- Paths (``--store``, ``--from``, ``--out``, devices, image files) are used as given, whatever their bytes,
  and shown escaped (:func:`avlog.textsafe.visible`): they are never checked here.
- Numbers that name a row fit SQLite's INTEGER (:data:`avlog.store.catalog.MAX_ROW_ID`).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import typer

from avlog.errors import UsageError
from avlog.i18n import _
from avlog.store.catalog import MAX_ROW_ID
from avlog.textsafe import refused_character, undecodable_character

__all__ = ["MAX_ROW_ID", "key_text", "stored_text", "user_time"]


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


def _check(value: Any, *, stored: bool) -> None:
    for text in _values(value):
        # Stored text: one scan finds the first character refused, an undecodable byte among them.
        refused = refused_character(text) if stored else undecodable_character(text)
        undecodable = undecodable_character(text) if refused is not None and not refused.undecodable else refused
        if undecodable is not None:
            raise typer.BadParameter(
                _("not valid UTF-8: the byte {byte} at character {position}").format(
                    byte=undecodable.shown, position=undecodable.position + 1
                )
            )
        if refused is not None:
            raise typer.BadParameter(
                _(
                    "the control or invisible character {char} at character {position}; text kept in the "
                    "catalog must show as it was typed, on one line"
                ).format(char=refused.shown, position=refused.position + 1)
            )


def stored_text(value: Any) -> Any:
    """Typer callback for text that is stored in the catalog: valid UTF-8, nothing hidden (see the module)."""
    _check(value, stored=True)
    return value


def key_text(value: Any) -> Any:
    """Typer callback for text that only looks something up: valid UTF-8."""
    _check(value, stored=False)
    return value


#: Times on the command line lie in these years: catalog times are written with four-digit years, and
#: retention adds up to a hundred years (and a grace period) to them.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000


def user_time(text: str, tz: tzinfo, option: str) -> datetime:
    """An ISO 8601 date or time of ``option``, read in the store's zone ``tz`` when it has none, within
    :data:`EARLIEST_YEAR` to :data:`LATEST_YEAR` (else a usage error, never an overflow later)."""
    from avlog.timefmt import parse_user_time

    moment = parse_user_time(text, tz)
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:
        year = moment.year
    if not EARLIEST_YEAR <= year <= LATEST_YEAR or not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise UsageError(
            _("{option} must lie between the years {first} and {last}, not {text}").format(
                option=option, first=EARLIEST_YEAR, last=LATEST_YEAR, text=text
            )
        )
    return moment
