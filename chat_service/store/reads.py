"""Traced, timed reads, the same for every backend.

A read in a recorded trace is a CLIENT span named after the table it reads (``SELECT
exchanges``, ``SELECT conversations``) with the database conventions' attributes and the rows
it returned; in an unrecorded one (or with tracing
off) it costs only the timing the metrics need.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sized
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from chat_service.store.base import StoreError, StoreObserver
from chat_service.store.group_commit import TABLE

CONVERSATIONS = "conversations"

R = TypeVar("R", bound=Sized)


class TracedReads:
    def __init__(
        self, tracer: Tracer, observer: StoreObserver, span_attributes: Mapping[str, str | int]
    ) -> None:
        self._tracer = tracer
        self._observer = observer
        self._span_attributes = span_attributes
        # Each table's span attributes, made once.
        self._attributes: dict[str, dict[str, str | int]] = {}

    async def select(self, read: Callable[[], Awaitable[R]], table: str = TABLE) -> R:
        """Run ``read`` (it returns the rows of ``table``; raises StoreError) inside its
        span."""
        if not trace.get_current_span().is_recording():
            started = time.perf_counter()
            rows = await read()
            self._observer.store_read("SELECT", time.perf_counter() - started)
            return rows
        attributes = self._attributes.get(table)
        if attributes is None:
            attributes = self._attributes[table] = {
                **self._span_attributes,
                "db.collection.name": table,
                "db.operation.name": "SELECT",
            }
        with self._tracer.start_as_current_span(
            f"SELECT {table}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            started = time.perf_counter()
            try:
                rows = await read()
            except StoreError as exc:
                # The status (ERROR, with the exception) is set by the SDK as it leaves.
                span.set_attribute("error.type", type(exc.__cause__).__qualname__)
                raise
            self._observer.store_read("SELECT", time.perf_counter() - started)
            span.set_attribute("db.response.returned_rows", len(rows))
            return rows
