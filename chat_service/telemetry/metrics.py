"""Prometheus metrics: one registry per service instance, served at ``/metrics``.

Names follow the OpenTelemetry semantic conventions translated to Prometheus
(``http.server.request.duration`` -> ``http_server_request_duration_seconds``), with the
conventions' recommended buckets. Labels are bounded: route templates, methods, status
codes, model names; never raw paths, ids or user text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from chat_service import __version__
from chat_service.telemetry.context import current_exemplar
from chat_service.telemetry.gc_pauses import GCPauses

# Recommended by the HTTP semantic conventions for http.server.request.duration.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Recommended by the GenAI semantic conventions for gen_ai.client.operation.duration ...
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# ... and for gen_ai.client.token.usage.
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# Between streamed chunks: the server-side time-per-output-token buckets of the GenAI
# conventions, with finer ones below 10 ms for fast local models.
GENAI_CHUNK_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5,
)  # fmt: skip
# SQLite on local disk: sub-millisecond reads up to fsync-bound commits.
STORE_DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
UNMATCHED_ROUTE = "unmatched"


def bounded_method(method: str) -> str:
    """The method, or ``_OTHER`` (as the HTTP conventions say) so clients cannot add labels."""
    return method if method in KNOWN_METHODS else "_OTHER"


class PoolGauges(Protocol):
    """What the metrics read of a connection pool (the PostgreSQL store's PoolStats)."""

    max_size: int
    on_wait: Callable[[float], None] | None

    @property
    def size(self) -> int: ...

    @property
    def in_use(self) -> int: ...


class InFlight:
    """Requests in flight, counted by the event loop with ``+=``/``-=``.

    Gauge.inc()/dec() take a lock each; on every request that was measurable, and only
    the event loop counts here, so the gauge reads this plain integer at scrape time.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Metrics:
    """Every metric the service exports, registered on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.gc_pauses = GCPauses(registry)

        self.build_info = Info(
            "chat_service_build", "Version of the running service.", registry=registry
        )
        self.build_info.info({"version": __version__})

        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
            ["http_request_method", "http_route"],
            registry=registry,
        )
        self._in_flight: dict[tuple[str, str], InFlight] = {}
        self.exchanges = Counter(
            "chat_exchanges",
            "Exchanges the store was asked to persist, by outcome (stored or failed).",
            ["outcome"],
            registry=registry,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of assistant (GenAI) operations.",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=GENAI_DURATION_BUCKETS,
            registry=registry,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per assistant operation, by token type (input or output).",
            [
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_token_type",
            ],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=registry,
        )
        genai_labels = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
        self.genai_time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from asking the model to receiving the first chunk of its streamed reply.",
            genai_labels,
            buckets=GENAI_DURATION_BUCKETS,
            registry=registry,
        )
        self.genai_time_per_chunk = Histogram(
            "gen_ai_client_operation_time_per_output_chunk_seconds",
            "Time between consecutive chunks of a streamed reply, after the first.",
            genai_labels,
            buckets=GENAI_CHUNK_BUCKETS,
            registry=registry,
        )
        self.model_retries = Counter(
            "chat_model_retries",
            "Model requests retried (429, 5xx, connection errors), by provider and model.",
            ["gen_ai_provider_name", "gen_ai_request_model"],
            registry=registry,
        )
        self.reply_cache = Counter(
            "chat_reply_cache_requests",
            "Reply cache lookups (CHAT_REPLY_CACHE_TTL_S), by result (hit or miss).",
            ["result"],
            registry=registry,
        )
        self.streams_open = Gauge(
            "chat_streams_open",
            "Replies being streamed to clients (server-sent events) right now.",
            registry=registry,
        )
        self.event_subscriptions = Gauge(
            "chat_event_subscriptions",
            "Live-update streams (GET /chat/events) open right now.",
            registry=registry,
        )
        self.list_subscriptions = Gauge(
            "chat_conversation_list_subscriptions",
            "Streams of callers' lists of conversations (GET /chat/conversation-events) open "
            "right now.",
            registry=registry,
        )
        self.store_duration = Histogram(
            "chat_store_operation_duration_seconds",
            "Duration of store operations (reads, and each group-commit transaction).",
            ["db_operation_name"],
            buckets=STORE_DURATION_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "chat_store_commit_batch_size",
            "Exchanges committed per group-commit transaction.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.spans_dropped = Counter(
            "chat_telemetry_spans_dropped",
            "Finished spans that could not be exported (collector down, slow or refusing).",
            registry=registry,
        )
        # Pre-create the outcome series so that rate() works from the first scrape; the
        # store's series are bound once: labels() takes a lock and a lookup on every call,
        # and the store reports every read and commit (issue 26).
        self._stored = self.exchanges.labels(outcome="stored")
        self._failed = self.exchanges.labels(outcome="failed")
        self._store_operations: dict[str, Histogram] = {}
        for result in ("hit", "miss"):
            self.reply_cache.labels(result=result)

    def in_flight(self, method: str, route: str) -> InFlight:
        """The in-flight count of ``method`` ``route``, which the gauge reads when scraped."""
        counter = self._in_flight.get((method, route))
        if counter is None:
            counter = self._in_flight[(method, route)] = InFlight()
            self.active_requests.labels(method, route).set_function(lambda: counter.count)
        return counter

    def watch_pool(self, pool: PoolGauges) -> None:
        """The database connection pool's metrics (PostgreSQL), named as the OpenTelemetry
        database client conventions name them."""
        connections = Gauge(
            "db_client_connection_count",
            "Connections of the database pool, by state (used or idle).",
            ["db_client_connection_state"],
            registry=self.registry,
        )
        connections.labels("used").set_function(lambda: pool.in_use)
        connections.labels("idle").set_function(lambda: pool.size - pool.in_use)
        Gauge(
            "db_client_connection_max",
            "Connections the database pool may open.",
            registry=self.registry,
        ).set_function(lambda: pool.max_size)
        waits = Histogram(
            "db_client_connection_wait_time_seconds",
            "Time a query waited for a free connection of the pool (only queries that waited).",
            buckets=STORE_DURATION_BUCKETS,
            registry=self.registry,
        )
        pool.on_wait = waits.observe

    # -- the store's observer (see chat_service.store.base.StoreObserver) -------------

    def store_read(self, operation: str, seconds: float) -> None:
        self._store_operation(operation).observe(seconds, exemplar=current_exemplar())

    def store_committed(self, batch_size: int, seconds: float) -> None:
        exemplar = current_exemplar()
        self._store_operation("BATCH INSERT").observe(seconds, exemplar)
        self.batch_size.observe(batch_size, exemplar)
        self._stored.inc(batch_size)

    def store_commit_failed(self, batch_size: int) -> None:
        self._failed.inc(batch_size)

    def _store_operation(self, operation: str) -> Histogram:
        """The duration series of ``operation`` (the store names a few: SELECT, ...)."""
        series = self._store_operations.get(operation)
        if series is None:
            series = self._store_operations[operation] = self.store_duration.labels(
                db_operation_name=operation
            )
        return series
