"""Traced, timed reads of the exchanges table, the same for every backend.

A read in a recorded trace is a CLIENT span named ``SELECT exchanges`` with the database
conventions' attributes and the rows it returned; in an unrecorded one (or with tracing
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

R = TypeVar("R", bound=Sized)


class TracedReads:
    def __init__(
        self, tracer: Tracer, observer: StoreObserver, span_attributes: Mapping[str, str | int]
    ) -> None:
        self._tracer = tracer
        self._observer = observer
        self._attributes = {
            **span_attributes,
            "db.collection.name": TABLE,
            "db.operation.name": "SELECT",
        }

    async def select(self, read: Callable[[], Awaitable[R]]) -> R:
        """Run ``read`` (it returns the rows; raises StoreError) inside its span."""
        if not trace.get_current_span().is_recording():
            started = time.perf_counter()
            rows = await read()
            self._observer.store_read("SELECT", time.perf_counter() - started)
            return rows
        with self._tracer.start_as_current_span(
            f"SELECT {TABLE}", kind=SpanKind.CLIENT, attributes=self._attributes
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
