"""A span's ids, as logs, exemplars and response headers want them.

Each helper takes a span context (so a caller that needs several reads the active span
once) and has a ``current_*`` form for the active span.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanContext


def active() -> SpanContext:
    return trace.get_current_span().get_span_context()


def ids_of(context: SpanContext) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in lowercase hex, or None for no (valid) span."""
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def exemplar_of(context: SpanContext) -> dict[str, str] | None:
    """A ``trace_id`` exemplar, if the span is sampled (so the trace exists)."""
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": trace.format_trace_id(context.trace_id)}


def traceresponse_of(context: SpanContext) -> str | None:
    """W3C Trace Context level 2 ``traceresponse``: ``00-{trace id}-{span id}-{flags}``."""
    if not context.is_valid:
        return None
    return (
        f"00-{trace.format_trace_id(context.trace_id)}-"
        f"{trace.format_span_id(context.span_id)}-{int(context.trace_flags):02x}"
    )


def current_ids() -> tuple[str, str] | None:
    return ids_of(active())


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None


def current_exemplar() -> dict[str, str] | None:
    return exemplar_of(active())
