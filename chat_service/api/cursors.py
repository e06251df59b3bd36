"""The cursors clients are given for a conversation's exchanges: ``t`` and the exchange's
turn, such as ``t42``, and its generation after a dot once the conversation has been cut
(``t7.1``: domain.exchange_cursor). They are history items' ``id``, the ids of ``done`` and
``exchange`` events (so what an EventSource sends back as ``Last-Event-ID``) and the
``before`` of history pages.

A turn numbers the exchanges of one conversation, so a cursor tells its holder nothing of
anyone else's traffic; the store's ids, which count every conversation's exchanges, stay
inside the service (issue 23). The ``t`` keeps a cursor from being mistaken for one of the
bare numbers earlier versions gave out, which are recognised and answered as such: see
validation.py for history pages and events.py for event streams.
"""

from __future__ import annotations

import re

from chat_service.chat.domain import Position, exchange_cursor

# Up to 9 digits: every turn and generation fits the stores' integer columns (PostgreSQL's
# are 32 bits).
MAX_TURN = 999_999_999
_CURSOR = re.compile(r"t([0-9]{1,9})(?:\.([0-9]{1,9}))?")
# What earlier versions gave out: an exchange's global id.
_EARLIER = re.compile(r"[0-9]{1,18}")


class EarlierCursor(ValueError):
    """A cursor from an earlier version of the service: a global id, which no longer
    names a position in any conversation."""


def cursor(turn: int, generation: int = 0) -> str:
    """The cursor of the exchange at ``turn`` (``t0``: before the first)."""
    return exchange_cursor(turn, generation)


def position_of(text: str) -> Position | None:
    """The turn and generation a cursor names, or None if ``text`` is no cursor. Raises
    EarlierCursor for one of an earlier version."""
    if match := _CURSOR.fullmatch(text):
        return Position(int(match[1]), int(match[2] or 0))
    if _EARLIER.fullmatch(text):
        raise EarlierCursor(text)
    return None


def turn_of(text: str) -> int | None:
    """The turn a cursor names (see :func:`position_of`)."""
    position = position_of(text)
    return None if position is None else position.turn
