"""How many streams one caller, and one address, may hold open at once.

A stream (a streamed reply, a ``GET /chat/events`` subscription) holds a connection, a file
descriptor and some memory for as long as it lasts, and costs its caller nothing once
opened: without a cap, one key could hold hundreds and leave the process without descriptors
for anyone else. Each caller (its principal, or its address when anonymous: identity.py's
``caller``) may hold CHAT_MAX_STREAMS_PER_CALLER; each client address, whoever it signs in
as, CHAT_MAX_STREAMS_PER_ADDRESS (larger: many people can share one address behind a NAT).
One more is refused with 429 and the error shape before it opens.
"""

from __future__ import annotations

from aiohttp import web

from chat_service.api.errors import ApiError
from chat_service.api.identity import CLIENT_ADDRESS, caller

# How long a refused client should wait: until one of its streams ends, which is unknown;
# a page reconnecting its live updates backs off by itself.
RETRY_AFTER_S = 5


class StreamLimits:
    def __init__(self, per_caller: int, per_address: int) -> None:
        self.per_caller = per_caller
        self.per_address = per_address
        # ("caller", key) and ("address", address): anonymous callers are keyed by address
        # too, and are held to both caps.
        self._open: dict[tuple[str, str], int] = {}

    def hold(self, request: web.Request) -> _Held:
        """``with``: count one stream of the request's caller and address while the block
        runs; ApiError 429 if either has its cap already."""
        held = (("caller", caller(request)), ("address", request[CLIENT_ADDRESS]))
        for (kind, key), cap in zip(held, (self.per_caller, self.per_address), strict=True):
            if self._open.get((kind, key), 0) >= cap:
                setting = f"CHAT_MAX_STREAMS_PER_{kind.upper()}"
                raise ApiError(
                    429,
                    f"Too many open streams ({cap}, {setting}); close one first.",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
        return _Held(self._open, held)


class _Held:
    """The streams :meth:`StreamLimits.hold` counts, counted from ``with`` until its end. A
    class rather than a generator-based context manager: every stream takes one (issue 26)."""

    __slots__ = ("_held", "_open")

    def __init__(self, open_: dict[tuple[str, str], int], held: tuple[tuple[str, str], ...]):
        self._open = open_
        self._held = held

    def __enter__(self) -> None:
        for slot in self._held:
            self._open[slot] = self._open.get(slot, 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        for slot in self._held:
            if (left := self._open[slot] - 1) > 0:
                self._open[slot] = left
            else:
                del self._open[slot]
