"""A span's ids, as logs, exemplars and response headers want them."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanContext


@dataclass(frozen=True, slots=True)
class SpanIds:
    """A valid span context's ids in lowercase hex, formatted once per request."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceresponse(self) -> str:
        """W3C Trace Context level 2 ``traceresponse``: ``00-{trace id}-{span id}-{flags}``."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    @property
    def exemplar(self) -> dict[str, str] | None:
        """A ``trace_id`` exemplar, if the span is sampled (so the trace exists)."""
        return {"trace_id": self.trace_id} if self.sampled else None


def active() -> SpanContext:
    return trace.get_current_span().get_span_context()


def span_ids(context: SpanContext) -> SpanIds | None:
    """The ids of ``context``, or None for no (valid) span."""
    if not context.is_valid:
        return None
    return SpanIds(
        f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags.sampled
    )


def current_ids() -> SpanIds | None:
    return span_ids(active())


def current_exemplar() -> dict[str, str] | None:
    """The current span's ``trace_id`` exemplar, if it is sampled. Asked by every metric
    observation: an unsampled span (tracing off) is not formatted at all."""
    context = active()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": f"{context.trace_id:032x}"}
