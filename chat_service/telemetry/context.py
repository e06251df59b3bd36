"""The active span's ids, as logs, exemplars and response headers want them."""

from __future__ import annotations

from opentelemetry import trace


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the active span in lowercase hex, or None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None


def current_exemplar() -> dict[str, str] | None:
    """A ``trace_id`` exemplar for the active span, if it is sampled (so the trace exists)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": trace.format_trace_id(context.trace_id)}


def traceresponse_header() -> str | None:
    """W3C Trace Context level 2 ``traceresponse``: ``00-{trace id}-{span id}-{flags}``."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return (
        f"00-{trace.format_trace_id(context.trace_id)}-"
        f"{trace.format_span_id(context.span_id)}-{int(context.trace_flags):02x}"
    )
