"""Trace ids without an exporter: the caller's W3C trace continued, nothing recorded."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from opentelemetry import baggage, trace
from opentelemetry.context import Context

from chat_service.api.telemetry import TraceContinuation

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def continue_from(**headers: str) -> tuple[trace.SpanContext, Context]:
    request = make_mocked_request("GET", "/chat/history", headers=headers)
    return TraceContinuation().start(request)


def test_the_callers_trace_is_continued_with_a_new_unsampled_span() -> None:
    span, context = continue_from(
        traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", tracestate="vendor=abc,other=1"
    )
    assert f"{span.trace_id:032x}" == CALLER_TRACE
    assert f"{span.span_id:016x}" != CALLER_SPAN
    assert span.is_valid
    assert not span.is_remote
    assert not span.trace_flags.sampled, "nothing is recorded here, and the flags say so"
    assert span.trace_state.to_header() == "vendor=abc,other=1"
    current = trace.get_current_span(context)
    assert current.get_span_context() == span
    assert not current.is_recording()


def test_without_a_traceparent_a_new_trace_starts() -> None:
    first, _ = continue_from()
    second, _ = continue_from()
    assert first.is_valid
    assert second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{CALLER_TRACE}-{'0' * 16}-01",  # the parent span id may not be all zeros
        f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",  # version ff is forbidden
        f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01",  # ids are lowercase hex
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace_without_its_tracestate(
    traceparent: str,
) -> None:
    span, _ = continue_from(traceparent=traceparent, tracestate="vendor=abc")
    assert span.is_valid
    # The header named the caller's trace, but invalidly: it is not continued.
    assert f"{span.trace_id:032x}" != CALLER_TRACE
    assert span.trace_state.to_header() == ""


def test_baggage_from_the_caller_stays_in_the_context() -> None:
    _, context = continue_from(
        traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", baggage="tenant=acme"
    )
    assert baggage.get_baggage("tenant", context) == "acme"
