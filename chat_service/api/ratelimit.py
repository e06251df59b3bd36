"""Per-caller rate limiting of ``/chat/*`` with token buckets.

A caller is its principal when it has one (an API key or a token's subject), otherwise its
address (identity.py's ``caller`` and ``client_address``: NGINX in front does not make
every user one caller, and a direct caller cannot pick its own). Every answer says where
the caller stands with the IETF draft's ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers); over the limit: 429 and ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from chat_service.api.errors import ApiError
from chat_service.api.identity import caller

POLICY = "per-caller"  # the policy's name in RateLimit-Policy and RateLimit
MAX_TRACKED_CLIENTS = 100_000
RATE_LIMIT_HEADERS = web.RequestKey("rate_limit_headers", dict[str, str])


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate`` tokens per second up to ``burst``, one bucket per client, LRU-bounded."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """Spend one token; return 0 if allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[client] = bucket  # most recently used last
        if len(self._buckets) > self._max_clients:
            # The least recently seen client: its bucket would be full again by now anyway.
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def standing(self, client: str) -> tuple[int, float]:
        """Whole tokens ``client`` has left, and the seconds until its bucket is full, as
        of its last :meth:`take` (which every call follows)."""
        bucket = self._buckets[client]
        return int(bucket.tokens), (self.burst - bucket.tokens) / self.rate


def rate_limit_middleware(buckets: TokenBuckets) -> Middleware:
    """Count each request of the mount it is on (``/chat``) against its caller (runs after
    identity.py's ``identify``, before a refused credential is answered: floods of bad ones
    are throttled by address)."""
    policy = f'"{POLICY}";q={buckets.burst};w={max(1, math.ceil(buckets.burst / buckets.rate))}'

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = caller(request)
        wait = buckets.take(client)
        remaining, full_in = buckets.standing(client)
        # Sent by add_rate_limit_headers with whatever answers: a stream, an error, a 429.
        request[RATE_LIMIT_HEADERS] = {
            "RateLimit-Policy": policy,
            "RateLimit": f'"{POLICY}";r={remaining};t={math.ceil(full_in)}',
        }
        if wait > 0:
            raise ApiError(
                429,
                "Too many requests; slow down.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return await handler(request)

    return limit


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the caller's standing, on every answer the limit counted."""
    if (headers := request.get(RATE_LIMIT_HEADERS)) is not None:
        response.headers.update(headers)
