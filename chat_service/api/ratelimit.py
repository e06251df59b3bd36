"""Per-client rate limiting of ``/chat/*`` with token buckets.

A client is its API key when it presents a valid one, otherwise its address: the peer's,
or the first untrusted one in X-Forwarded-For when the peer is a configured trusted proxy
(CHAT_TRUSTED_PROXIES), so NGINX in front does not make every user one client while a
direct caller cannot pick its own identity. Over the limit: 429, ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from chat_service.api.auth import ApiKeys
from chat_service.api.errors import ApiError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED_CLIENTS = 100_000


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


def parse_networks(values: Sequence[str]) -> tuple[IpNetwork, ...]:
    """CIDRs or bare addresses; raises ValueError on anything else."""
    return tuple(
        ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()
    )


def client_address(request: web.Request, trusted: tuple[IpNetwork, ...]) -> str:
    """The peer; when the peer is a trusted proxy, the address that proxy saw.

    A proxy vouches only for the entry it appended itself, the last one of X-Forwarded-For
    (NGINX's ``$proxy_add_x_forwarded_for``); everything left of it was written by the
    client. One hop, as NGINX's ``real_ip_recursive off``: a client on a private network
    behind the proxy is still told apart, and cannot borrow an identity.
    """
    peer = request.remote or "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.getall("X-Forwarded-For", [])
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    if not hops:
        return peer
    try:
        return str(ipaddress.ip_address(hops[-1]))
    except ValueError:
        return peer  # not an address: ignore the header rather than trust a made-up name


def _is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def rate_limit_middleware(
    buckets: TokenBuckets, keys: ApiKeys, trusted: tuple[IpNetwork, ...]
) -> Middleware:
    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/chat/"):
            client = (keys.identify_request(request) if keys else None) or client_address(
                request, trusted
            )
            wait = buckets.take(client)
            if wait > 0:
                raise ApiError(
                    429,
                    "Too many requests; slow down.",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return await handler(request)

    return limit
