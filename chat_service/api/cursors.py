"""The cursors clients are given for a conversation's exchanges: ``t`` and the exchange's
turn, such as ``t42``. They are the ids of ``done`` and ``exchange`` events (so what an
EventSource sends back as ``Last-Event-ID``) and the ``before`` of history pages.

A turn numbers the exchanges of one conversation, so a cursor tells its holder nothing of
anyone else's traffic; the store's ids, which count every conversation's exchanges, stay
inside the service (issue 23). The ``t`` keeps a cursor from being mistaken for one of the
bare numbers earlier versions gave out, which are recognised and answered as such: see
validation.py for history pages and events.py for event streams.
"""

from __future__ import annotations

import re

# Up to 9 digits: every turn fits the stores' integer column (PostgreSQL's is 32 bits).
_CURSOR = re.compile(r"t([0-9]{1,9})")
# What earlier versions gave out: an exchange's global id.
_EARLIER = re.compile(r"[0-9]{1,18}")


class EarlierCursor(ValueError):
    """A cursor from an earlier version of the service: a global id, which no longer
    names a position in any conversation."""


def cursor(turn: int) -> str:
    """The cursor of the exchange at ``turn`` (``t0``: before the first)."""
    return f"t{turn}"


def turn_of(text: str) -> int | None:
    """The turn a cursor names, or None if ``text`` is no cursor. Raises EarlierCursor for
    one of an earlier version."""
    if match := _CURSOR.fullmatch(text):
        return int(match[1])
    if _EARLIER.fullmatch(text):
        raise EarlierCursor(text)
    return None
