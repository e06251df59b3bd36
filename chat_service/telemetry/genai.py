"""GenAI telemetry around any assistant: a ``chat {model}`` span and the GenAI metrics.

Follows the OpenTelemetry GenAI semantic conventions: span name ``{operation} {model}``,
``gen_ai.*`` attributes, ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage``. Message content goes on the span only when
CHAT_CAPTURE_CONTENT is true, as the conventions require it to be opt-in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chat_service.assistant.base import Assistant, Reply
from chat_service.store.base import Exchange
from chat_service.telemetry.context import current_exemplar
from chat_service.telemetry.metrics import Metrics

OPERATION = "chat"


class InstrumentedAssistant:
    """Wraps an assistant; every reply gets a GenAI span and metrics."""

    def __init__(self, inner: Assistant, metrics: Metrics, *, capture_content: bool) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self.in_process = inner.in_process
        self._metrics = metrics
        # Taken at start-up, after tracing is set up: not the proxy a module-level one would be.
        self._tracer = trace.get_tracer(__name__)
        self._capture_content = capture_content
        # gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model
        self._labels = (OPERATION, self.provider, self.model)
        self._duration_ok = metrics.genai_duration.labels(*self._labels, "")
        self._input_tokens = metrics.genai_tokens.labels(*self._labels, "input")
        self._output_tokens = metrics.genai_tokens.labels(*self._labels, "output")

    async def reply(
        self, message: str, history: Sequence[Exchange], *, conversation_id: str
    ) -> Reply:
        if not trace.get_current_span().is_recording():
            # The request's trace is not recorded, so neither would this child be (parent-
            # based sampling): skip building a span nobody keeps; the metrics still count.
            return await self._timed(message, history, conversation_id, None)
        attributes = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": self.model,
            "gen_ai.conversation.id": conversation_id,
        }
        kind = SpanKind.INTERNAL if self.in_process else SpanKind.CLIENT
        with self._tracer.start_as_current_span(
            f"{OPERATION} {self.model}", kind=kind, attributes=attributes
        ) as span:
            reply = await self._timed(message, history, conversation_id, span)
            span.set_attributes(
                {
                    "gen_ai.response.model": reply.model,
                    "gen_ai.usage.input_tokens": reply.input_tokens,
                    "gen_ai.usage.output_tokens": reply.output_tokens,
                }
            )
            if self._capture_content:
                span.set_attributes(_content_attributes(message, history, reply))
            return reply

    async def _timed(
        self,
        message: str,
        history: Sequence[Exchange],
        conversation_id: str,
        span: trace.Span | None,
    ) -> Reply:
        """Call the assistant, recording the GenAI duration and token metrics."""
        started = time.perf_counter()
        try:
            reply = await self.inner.reply(message, history, conversation_id=conversation_id)
        except Exception as exc:
            error_type = type(exc).__qualname__
            if span is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            self._metrics.genai_duration.labels(*self._labels, error_type).observe(
                time.perf_counter() - started, current_exemplar()
            )
            raise
        elapsed = time.perf_counter() - started
        # Unrecorded (span None) means unsampled: no trace for an exemplar to point to.
        exemplar = current_exemplar() if span is not None else None
        self._duration_ok.observe(elapsed, exemplar)
        self._input_tokens.observe(reply.input_tokens, exemplar)
        self._output_tokens.observe(reply.output_tokens, exemplar)
        return reply

    async def close(self) -> None:
        await self.inner.close()


def _content_attributes(message: str, history: Sequence[Exchange], reply: Reply) -> dict[str, str]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` in the conventions' JSON shape."""
    inputs: list[dict[str, object]] = []
    for exchange in history:
        inputs.append({"role": "user", "parts": [{"type": "text", "content": exchange.user}]})
        inputs.append({"role": "assistant", "parts": [{"type": "text", "content": exchange.ai}]})
    inputs.append({"role": "user", "parts": [{"type": "text", "content": message}]})
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": reply.text}],
            "finish_reason": "stop",
        }
    ]
    return {
        "gen_ai.input.messages": json.dumps(inputs, ensure_ascii=False),
        "gen_ai.output.messages": json.dumps(output, ensure_ascii=False),
    }
