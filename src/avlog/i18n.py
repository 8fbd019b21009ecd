"""The one translation helper for every user-facing string.

Messages are looked up in the ``avlog`` gettext domain under ``avlog/locale``.
The language follows the usual environment (``LANGUAGE``, ``LC_ALL``,
``LC_MESSAGES``, ``LANG``); without a catalogue for it, English is shown.
"""

from __future__ import annotations

import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "avlog"

_translation = gettext.translation(DOMAIN, localedir=LOCALE_DIR, fallback=True)


def _(message: str) -> str:
    """Translate ``message`` into the user's language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a message whose form depends on the count ``n``."""
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a constant for translation where it is defined; ``_()`` translates it where it is shown."""
    return message
