"""GenAI telemetry around a streamed reply: one ``chat {model}`` span per call, with the
conventions' attributes, and the Prometheus GenAI metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import cast

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chat_service.assistant import AssistantError, Completion, ReplyChunk
from chat_service.chat.domain import Exchange
from chat_service.chat.model_slots import ModelSlots
from chat_service.chat.replies import ReplyService, Turn
from chat_service.chat.reply_cache import ReplyCache, cache_key
from chat_service.store import ConversationCatalogue, ExchangeLog
from chat_service.telemetry.genai import GenAITelemetry
from chat_service.telemetry.metrics import Metrics
from tests.support.refs import ref

LABELS = {
    "gen_ai_operation_name": "chat",
    "gen_ai_provider_name": "test-provider",
    "gen_ai_request_model": "test-model",
}
CALLER = "key:tester"
HISTORY = [Exchange(id=1, conversation=ref("c"), turn=1, user="q1", ai="a1", created_at="t")]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def telemetry_for(metrics: Metrics, provider: TracerProvider, **options: str) -> GenAITelemetry:
    return GenAITelemetry(
        metrics,
        provider="test-provider",
        model="test-model",
        tracer_provider=provider,
        **options,
    )


async def model_stream(
    pieces: list[str], completion: Completion | None, error: Exception | None = None
) -> AsyncGenerator[ReplyChunk, None]:
    for piece in pieces:
        yield piece
    if error is not None:
        raise error
    if completion is not None:
        yield completion


COMPLETION = Completion(
    model="test-model-2026",
    finish_reason="stop",
    input_tokens=12,
    output_tokens=3,
    response_id="r1",
)


class ScriptedModel:
    """An assistant whose one call streams ``chunks``."""

    provider = "test-provider"
    model = "test-model"
    server_url: str | None = None

    def __init__(self, chunks: AsyncGenerator[ReplyChunk, None]) -> None:
        self._chunks = chunks

    def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        return self._chunks

    async def models(self) -> Sequence[str]:
        return (self.model,)

    async def close(self) -> None:
        return None


def turn_for(
    telemetry: GenAITelemetry,
    chunks: AsyncGenerator[ReplyChunk, None],
    cache: ReplyCache | None = None,
) -> Turn:
    """A turn of conversation ``conv-1`` answering "hello" after HISTORY, as the service
    makes one (its reply reads nothing from the store, hence none)."""
    service = ReplyService(
        cast(ExchangeLog, None),
        cast(ConversationCatalogue, None),
        ScriptedModel(chunks),
        telemetry,
        context_turns=len(HISTORY),
        slots=ModelSlots(4, wait_s=1),
        cache=cache,
    )
    return Turn(service, ref("conv-1"), "hello", HISTORY, CALLER, "test-model")


async def observe(
    telemetry: GenAITelemetry,
    provider: TracerProvider,
    chunks: AsyncGenerator[ReplyChunk, None],
    *,
    cache: ReplyCache | None = None,
    sampled: bool = True,
) -> list[str]:
    """The reply of a turn answered with ``chunks`` inside a request span (recorded or
    not): Turn.reply, as the handlers run it."""
    tracer = provider.get_tracer("test")
    request = tracer.start_as_current_span("POST /chat/message") if sampled else _unrecorded()
    with request:
        turn = turn_for(telemetry, chunks, cache)
        async with contextlib.aclosing(turn.reply()) as pieces:
            return [piece async for piece in pieces]


@contextlib.contextmanager
def _unrecorded() -> Iterator[None]:
    yield


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, {**LABELS, **labels})
    return value


async def test_one_client_span_per_call_child_of_the_request(
    metrics: Metrics, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    telemetry = telemetry_for(metrics, provider, server_url="https://models.example:8443/v1")
    chunks = await observe(telemetry, provider, model_stream(["Hel", "lo"], COMPLETION))
    assert chunks == ["Hel", "lo"], "the text passes through unchanged"

    [span] = spans(exporter, "chat test-model")
    [request] = spans(exporter, "POST /chat/message")
    assert span.kind == SpanKind.CLIENT
    assert span.parent is not None
    assert span.parent.span_id == request.context.span_id
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "test-provider"
    assert attributes["gen_ai.request.model"] == "test-model"
    assert attributes["gen_ai.response.model"] == "test-model-2026"
    assert attributes["gen_ai.response.id"] == "r1"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.conversation.id"] == "conv-1"
    assert attributes["gen_ai.request.stream"] is True
    assert 0 <= float(attributes["gen_ai.response.time_to_first_chunk"]) < 1  # type: ignore[arg-type]
    assert (attributes["server.address"], attributes["server.port"]) == ("models.example", 8443)
    assert not any(key.endswith(".messages") for key in attributes), "content is opt-in"
    assert span.status.status_code != StatusCode.ERROR


async def test_metrics_of_a_streamed_call(metrics: Metrics, provider: TracerProvider) -> None:
    telemetry = telemetry_for(metrics, provider)
    await observe(telemetry, provider, model_stream(["a", "b", "c", "d"], COMPLETION))
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert sample(metrics, duration, error_type="") == 1
    assert sample(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1
    # One time per chunk after the first.
    assert sample(metrics, "gen_ai_client_operation_time_per_output_chunk_seconds_count") == 3
    tokens = "gen_ai_client_token_usage_sum"
    assert sample(metrics, tokens, gen_ai_token_type="input") == 12
    assert sample(metrics, tokens, gen_ai_token_type="output") == 3


async def test_an_unsampled_request_gets_no_span_but_its_metrics(
    metrics: Metrics, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    telemetry = telemetry_for(metrics, provider)
    await observe(telemetry, provider, model_stream(["a"], COMPLETION), sampled=False)
    assert exporter.get_finished_spans() == ()
    count = "gen_ai_client_operation_duration_seconds_count"
    assert sample(metrics, count, error_type="") == 1


async def test_a_failed_call_is_an_error_with_its_type(
    metrics: Metrics, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    telemetry = telemetry_for(metrics, provider)
    failure = AssistantError("the model call failed (HTTP 429)", error_type="RateLimitError")
    with pytest.raises(AssistantError):
        await observe(telemetry, provider, model_stream(["par"], None, failure))
    [span] = spans(exporter, "chat test-model")
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RateLimitError"
    count = "gen_ai_client_operation_duration_seconds_count"
    assert sample(metrics, count, error_type="RateLimitError") == 1
    assert sample(metrics, count, error_type="") == 0


async def test_a_stopped_call_is_marked_stopped_not_failed(
    metrics: Metrics, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    telemetry = telemetry_for(metrics, provider)
    with provider.get_tracer("test").start_as_current_span("POST /chat/message"):
        reply = turn_for(telemetry, model_stream(["a", "b", "c"], COMPLETION)).reply()
        assert await anext(reply) == "a"
        await reply.aclose()  # the client went away
    [span] = spans(exporter, "chat test-model")
    assert (span.attributes or {})["chat_service.reply.stopped"] is True
    assert span.status.status_code != StatusCode.ERROR
    assert sample(metrics, "gen_ai_client_operation_duration_seconds_count", error_type="") == 0
    assert sample(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


async def test_a_cache_hit_has_a_marked_span_and_no_model_metrics(
    metrics: Metrics, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    telemetry = telemetry_for(metrics, provider)
    cache = ReplyCache(ttl_s=60)
    cache.put(cache_key("", "test-model", None, HISTORY, "hello"), "cached reply")
    unasked = model_stream(["never asked"], COMPLETION)
    assert await observe(telemetry, provider, unasked, cache=cache) == ["cached reply"]
    [span] = spans(exporter, "chat test-model")
    assert (span.attributes or {})["chat_service.reply_cache.hit"] is True
    assert "gen_ai.response.time_to_first_chunk" in (span.attributes or {})
    assert sample(metrics, "gen_ai_client_operation_duration_seconds_count", error_type="") == 0
    assert sample(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count") == 0


async def test_content_goes_on_the_span_only_when_capture_is_on(
    metrics: Metrics,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    telemetry = telemetry_for(metrics, provider, system_prompt="Be brief.")
    await observe(telemetry, provider, model_stream(["Hel", "lo"], COMPLETION))
    [span] = spans(exporter, "chat test-model")
    attributes = dict(span.attributes or {})
    inputs = str(attributes["gen_ai.input.messages"])
    assert all(text in inputs for text in ('"q1"', '"a1"', '"hello"'))
    assert '"Hello"' in str(attributes["gen_ai.output.messages"])
    assert "Be brief." in str(attributes["gen_ai.system_instructions"])


async def test_retries_are_counted_by_provider_and_model(
    metrics: Metrics, provider: TracerProvider
) -> None:
    telemetry = telemetry_for(metrics, provider)
    telemetry.retried()
    telemetry.retried()
    value = metrics.registry.get_sample_value(
        "chat_model_retries_total",
        {"gen_ai_provider_name": "test-provider", "gen_ai_request_model": "test-model"},
    )
    assert value == 2
