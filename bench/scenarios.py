"""The scenarios of the benchmark and the targets each must reach (issues 6, 13 and 15)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

REFERENCE = "e"
MAX_RSS_MB = 150.0


class Server(Enum):
    SERVICE = "service"
    REFERENCE = "reference"


class Driver(Enum):
    """What drives the load: wrk (requests), or bench.streams (streamed chats, scenario g)."""

    WRK = "wrk"
    STREAMS = "streams"


@dataclass(frozen=True, slots=True)
class Target:
    """What a scenario must reach; ``None`` means no requirement on that figure."""

    min_ratio: float | None = None  # of the reference's req/s
    min_rps: float | None = None
    max_p99_ms: float | None = None
    max_rss_mb: float | None = MAX_RSS_MB
    max_errors: int | None = 0
    # Scenario (g): p99 time to first delta through the service minus straight from the model.
    max_added_ttft_p99_ms: float | None = None
    # (scenario key, share): at least this share of that scenario's req/s in the same run.
    min_share_of: tuple[str, float] | None = None

    def describe(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f">={self.min_ratio:.0%} of ({REFERENCE})")
        if self.min_rps is not None:
            parts.append(f">={self.min_rps:g} req/s")
        if self.min_share_of is not None:
            parts.append(f">={self.min_share_of[1]:.0%} of ({self.min_share_of[0]})")
        if self.max_p99_ms is not None:
            parts.append(f"p99<={self.max_p99_ms:g}ms")
        if self.max_added_ttft_p99_ms is not None:
            parts.append(f"added TTFT p99<={self.max_added_ttft_p99_ms:g}ms")
        if self.max_errors is not None:
            parts.append("0 errors" if self.max_errors == 0 else f"<={self.max_errors} errors")
        if self.max_rss_mb is not None:
            parts.append(f"RSS<={self.max_rss_mb:g}MB")
        return ", ".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    method: str
    path: str
    server: Server
    target: Target
    tracing: bool = False
    seed_exchanges: int = 0
    # "postgresql": a PostgreSQL server of the bench's own (fsync on), instead of SQLite.
    database: str = "sqlite"
    # Service processes, on the same CPU, each driven by its own wrk with a share of the
    # connections: what spreading one load over replicas costs.
    replicas: int = 1
    driver: Driver = Driver.WRK
    # The service's environment for this scenario (after the bench's defaults; --set wins).
    settings: tuple[tuple[str, str], ...] = ()
    # Idle GET /chat/events streams held open (bench/subscribers.py) while wrk runs.
    idle_subscriptions: int = 0


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "a",
            "POST /chat/message, tracing off",
            "POST",
            "/chat/message",
            Server.SERVICE,
            # Issue 15's decision: 45% of (e) (was 50%, measured 38%), p99 <= 10 ms.
            Target(min_ratio=0.45, max_p99_ms=10),
        ),
        Scenario(
            "a2",
            "POST /chat/message, tracing off, asyncio's loop",
            "POST",
            "/chat/message",
            Server.SERVICE,
            # (a) without uvloop: what the speedups extra is worth, not a target of its own.
            Target(),
            settings=(("CHAT_EVENT_LOOP", "asyncio"),),
        ),
        Scenario(
            "b",
            "POST /chat/message, tracing 100% to OTLP",
            "POST",
            "/chat/message",
            Server.SERVICE,
            # The SDK's own cost per exported span rules out 30% (issue 15): 15%, p99 <= 25 ms.
            Target(min_ratio=0.15, max_p99_ms=25),
            tracing=True,
        ),
        Scenario(
            "b2",
            "POST /chat/message, tracing 10% (parent-based ratio)",
            "POST",
            "/chat/message",
            Server.SERVICE,
            Target(min_ratio=0.3),
            tracing=True,
            settings=(
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ),
        ),
        Scenario(
            "c",
            "GET /chat/history?limit=50, 100k rows",
            "GET",
            "/chat/history?limit=50",
            Server.SERVICE,
            Target(min_ratio=0.5),
            seed_exchanges=100_000,
        ),
        Scenario(
            "d",
            "GET /chat/history (all), 10k rows",
            "GET",
            "/chat/history",
            Server.SERVICE,
            Target(min_rps=250),
            seed_exchanges=10_000,
        ),
        Scenario(
            "f",
            "POST /chat/message on PostgreSQL, tracing off",
            "POST",
            "/chat/message",
            Server.SERVICE,
            Target(min_share_of=("a", 0.5)),
            database="postgresql",
        ),
        Scenario(
            "f2",
            "POST /chat/message, 2 replicas on one PostgreSQL",
            "POST",
            "/chat/message",
            Server.SERVICE,
            Target(),
            database="postgresql",
            replicas=2,
        ),
        Scenario(
            "h",
            "POST /chat/message beside 10,000 idle /chat/events",
            "POST",
            "/chat/message",
            Server.SERVICE,
            # Issue 15: (a) loses at most 10%; the subscriptions' memory is reported, not
            # bounded.
            Target(min_share_of=("a", 0.9), max_p99_ms=None, max_rss_mb=None),
            idle_subscriptions=10_000,
        ),
        Scenario(
            "g",
            "streamed chats from a 20 token/s model, TTFT",
            "POST",
            "/chat/message (SSE)",
            Server.SERVICE,
            # "0 errors": every stream ends with its done event.
            Target(max_added_ttft_p99_ms=10, max_rss_mb=300),
            driver=Driver.STREAMS,
        ),
        Scenario(
            REFERENCE,
            "reference: bare aiohttp, parse JSON",
            "POST",
            "/chat/message",
            Server.REFERENCE,
            Target(max_rss_mb=None),
        ),
    )
}
