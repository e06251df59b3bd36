"""``python -m bench.span_cost``: what one exported span costs the OpenTelemetry Python SDK.

Scenario (b) records about three spans per request (the server span, the GenAI span, the
wait for the group commit, and a share of the commit's span) and exports all of them. This
measures, in this process and without a server around it, the two costs every such span
carries whatever the service does: the SDK's start and end of a span with the GenAI span's
attributes (sampling, ids, attribute checks, context attach, the BatchSpanProcessor's
queue), and the OTLP exporter's protobuf encoding of it. Their sum, times the spans per
request, is a floor under (b)'s CPU time per request on top of (a)'s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from chat_service.telemetry.tracing import build_resource

START_ATTRIBUTES: dict[str, str | int] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "chat-service",
    "gen_ai.request.model": "dummy-1",
    "gen_ai.conversation.id": "default",
}
END_ATTRIBUTES: dict[str, str | int] = {
    "gen_ai.response.model": "dummy-1",
    "gen_ai.usage.input_tokens": 412,
    "gen_ai.usage.output_tokens": 22,
}


class Keeping(SpanExporter):
    """Keeps what the processor hands over, so the encoding can be timed on real spans."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def measure(count: int) -> tuple[float, float]:
    """Microseconds per span: SDK start and end, then protobuf encoding."""
    exporter = Keeping()
    provider = TracerProvider(resource=build_resource())
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=count))
    tracer = provider.get_tracer("bench.span_cost")
    started = time.perf_counter()
    for _ in range(count):
        with tracer.start_as_current_span(
            "chat dummy-1", kind=SpanKind.INTERNAL, attributes=START_ATTRIBUTES
        ) as span:
            span.set_attributes(END_ATTRIBUTES)
    sdk = (time.perf_counter() - started) / count
    provider.force_flush()
    spans = exporter.spans
    started = time.perf_counter()
    for first in range(0, len(spans), 512):  # the processor's default export batch
        encode_spans(spans[first : first + 512]).SerializeToString()
    encoding = (time.perf_counter() - started) / len(spans)
    provider.shutdown()
    return sdk * 1e6, encoding * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.span_cost", description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000, help="default %(default)s")
    parser.add_argument("--spans-per-request", type=float, default=3.1, help="default %(default)s")
    args = parser.parse_args(argv)
    measure(1_000)  # warm-up: imports, caches
    sdk, encoding = measure(args.spans)
    per_request = (sdk + encoding) * args.spans_per_request
    print(f"SDK start + end of a span with 7 attributes: {sdk:.1f} us")
    print(f"OTLP protobuf encoding of a span:            {encoding:.1f} us")
    print(
        f"{args.spans_per_request} spans per request: {per_request:.0f} us of CPU per request "
        "before anything else the request does"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
