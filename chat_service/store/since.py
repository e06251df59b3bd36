"""What a client that holds part of a conversation lacks: both stores' ``exchanges_after``.

A client holds the exchanges up to some turn, at the highest generation it knows
(domain.Position). A conversation's generations never decrease from one turn to the next
(a cut erases every exchange from a turn on, and what replaces them is stored under a higher
generation), so one row tells whether what the client holds is still all there: the one at
its turn. When that row is of the client's generation or lower, nothing it holds was cut,
and it lacks only the exchanges after it. Otherwise (the row is gone, or of a higher
generation), the conversation was cut at or before that turn since, at the first turn of a
higher generation: the client lacks everything from there on. That first turn is looked for
only then, so following a conversation costs one row more per read than reading after a
turn alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from chat_service.chat.domain import Exchange

# (first turn, count) -> up to ``count`` exchanges from that turn on, oldest first.
RowsFrom = Callable[[int, int], Awaitable[Sequence[Exchange]]]
# (generation) -> the first turn of a higher generation, or None.
FirstTurnAbove = Callable[[int], Awaitable[int | None]]


async def exchanges_since(
    rows_from: RowsFrom,
    first_turn_above: FirstTurnAbove,
    after_turn: int,
    generation: int,
    limit: int,
) -> Sequence[Exchange]:
    """Up to ``limit`` exchanges that a holder of the conversation up to ``after_turn`` at
    ``generation`` lacks, oldest first (see the module's docstring)."""
    if after_turn <= 0:
        return await rows_from(1, limit)
    # Turns are gap-free: the first row read, when there is one, is the one at its turn.
    rows = await rows_from(after_turn, limit + 1)
    if rows and rows[0].generation <= generation:
        return rows[1:]
    cut_at = await first_turn_above(generation)
    if cut_at is None:  # no cut since: the conversation is shorter than the turn held
        return []
    return await rows_from(cut_at, limit)
