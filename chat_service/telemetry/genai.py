"""GenAI telemetry around an assistant's streamed reply: one ``chat {model}`` span and the
GenAI metrics.

The span comes from ``opentelemetry-util-genai``, the GenAI conventions' own helper: it
names it ``{operation} {model}`` (kind CLIENT) and sets the ``gen_ai.*`` attributes, the
server's address and the response's details among them. What the conventions leave to the
application is added here: the conversation, whether the reply came from the reply cache,
whether the client stopped it.

Metrics go to the service's Prometheus registry (the util's own OpenTelemetry metrics go
to a no-op meter): operation duration and token usage per call, and for streams the time
to the first chunk and between chunks. Message content goes on the span only when
content capture is on (CHAT_CAPTURE_CONTENT, i.e. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
``span_only``), as the conventions require it to be opt-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from opentelemetry.util.genai.handler import TelemetryHandler
from opentelemetry.util.genai.invocation import InferenceInvocation
from opentelemetry.util.genai.types import Error, InputMessage, OutputMessage, TextPart

from chat_service.assistant.base import AssistantError, Completion
from chat_service.chat.domain import Exchange
from chat_service.telemetry.context import current_exemplar
from chat_service.telemetry.metrics import Metrics

OPERATION = "chat"
# Attributes the conventions have no name for; namespaced as the application's own.
CACHE_HIT_ATTRIBUTE = "chat_service.reply_cache.hit"
STOPPED_ATTRIBUTE = "chat_service.reply.stopped"


class GenAITelemetry:
    """Observes the streams of one assistant (its provider and model name the telemetry)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        provider: str,
        model: str,
        server_url: str | None = None,
        system_prompt: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self._metrics = metrics
        self._system_prompt = system_prompt
        # Built at start-up, after tracing is set up: the provider's own tracer.
        self._handler = TelemetryHandler(tracer_provider=tracer_provider)
        self._server: dict[str, Any] = {}
        if server_url:
            url = urlsplit(server_url)
            default_port = 443 if url.scheme == "https" else 80
            self._server = {"server_address": url.hostname, "server_port": url.port or default_port}
        # Each model's instruments, bound once (the models a deployment offers: CHAT_MODELS).
        self._by_model: dict[str, _ModelInstruments] = {}
        self._cache_hits = metrics.reply_cache.labels(result="hit")
        self._cache_misses = metrics.reply_cache.labels(result="miss")
        self.instruments(model)  # the default model's series exist from the start

    def instruments(self, model: str) -> _ModelInstruments:
        """The metrics of calls asking for ``model``, labelled with it."""
        found = self._by_model.get(model)
        if found is None:
            found = self._by_model[model] = _ModelInstruments(self._metrics, self.provider, model)
        return found

    def retried(self) -> None:
        """A model request is being retried (the assistant's retry hook)."""
        self._metrics.model_retries.labels(self.provider, self.model).inc()

    def cache_lookup(self, *, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()

    def watch(
        self,
        *,
        message: str,
        history: Sequence[Exchange],
        conversation_id: str,
        model: str | None = None,
        system_prompt: str | None = None,
        cached: bool = False,
    ) -> ReplyWatch:
        """``with``, around the loop over a reply's chunks: tell it each piece
        (:meth:`ReplyWatch.piece`) and the completion (:meth:`ReplyWatch.completed`); how
        the block ends says how the call did (a model failure, the caller stopping, or
        done). ``model`` and ``system_prompt``: what the call asks for (the deployment's
        when None); ``cached``: a reply replayed from the cache, which gets the span
        (marked) but none of a model call's metrics.

        A context manager rather than a generator wrapped around the reply's: every reply,
        and every chunk of it, would go through one more async generator (bench/README.md,
        issue 26)."""
        request_model = model or self.model
        prompt = self._system_prompt if system_prompt is None else system_prompt
        invocation = self._start(
            message, history, conversation_id, request_model, prompt, cached=cached
        )
        return ReplyWatch(self, self.instruments(request_model), invocation, cached)

    def _start(
        self,
        message: str,
        history: Sequence[Exchange],
        conversation_id: str,
        request_model: str,
        system_prompt: str | None,
        *,
        cached: bool,
    ) -> InferenceInvocation | None:
        if not trace.get_current_span().is_recording():
            # The request's trace is not recorded, so neither would this child be (parent-
            # based sampling): skip building a span nobody keeps; the metrics still count.
            return None
        invocation = self._handler.inference(
            self.provider,
            request_model=request_model,
            conversation_id=conversation_id,
            **self._server,
        )
        invocation.request_stream = True
        if cached:
            invocation.attributes[CACHE_HIT_ATTRIBUTE] = True
        if invocation.should_capture_content:
            if system_prompt:
                invocation.system_instruction = [TextPart(content=system_prompt)]
            invocation.input_messages = [*_as_messages(history), _user(message)]
        return invocation

    def _finish(
        self, invocation: InferenceInvocation, completion: Completion | None, text: str
    ) -> None:
        if completion is not None:
            invocation.response_model_name = completion.model
            invocation.response_id = completion.response_id
            invocation.finish_reasons = [completion.finish_reason]
            invocation.input_tokens = completion.input_tokens
            invocation.output_tokens = completion.output_tokens
        if invocation.should_capture_content:
            invocation.output_messages = [
                OutputMessage(
                    role="assistant",
                    parts=[TextPart(content=text)],
                    finish_reason=completion.finish_reason if completion else None,
                )
            ]
        invocation.stop()

    def _failed(
        self,
        invocation: InferenceInvocation | None,
        metered: _ModelInstruments,
        started: float,
        error_type: str,
        message: str,
    ) -> None:
        if invocation is not None:
            invocation.fail(Error(message=message, type=error_type))
        self._metrics.genai_duration.labels(*metered.labels, error_type).observe(
            time.perf_counter() - started, current_exemplar()
        )


class ReplyWatch:
    """One model call (or cache replay) being observed: see :meth:`GenAITelemetry.watch`."""

    __slots__ = (
        "_cached",
        "_completion",
        "_invocation",
        "_last_chunk",
        "_metered",
        "_started",
        "_telemetry",
        "_text",
    )

    def __init__(
        self,
        telemetry: GenAITelemetry,
        metered: _ModelInstruments,
        invocation: InferenceInvocation | None,
        cached: bool,
    ) -> None:
        self._telemetry = telemetry
        self._metered = metered
        self._invocation = invocation
        self._cached = cached
        self._completion: Completion | None = None
        self._last_chunk: float | None = None
        # Kept only for a span that captures content.
        self._text: list[str] | None = (
            [] if invocation is not None and invocation.should_capture_content else None
        )
        self._started = time.perf_counter()

    def __enter__(self) -> ReplyWatch:
        return self

    def piece(self, text: str) -> None:
        """A piece of the reply arrived."""
        now = time.perf_counter()
        if self._last_chunk is None:
            if self._invocation is not None:
                self._invocation.ttfc_seconds = now - self._started
            if not self._cached:
                self._metered.first_chunk.observe(now - self._started, current_exemplar())
        elif not self._cached:
            self._metered.next_chunk.observe(now - self._last_chunk)
        self._last_chunk = now
        if self._text is not None:
            self._text.append(text)

    def completed(self, completion: Completion) -> None:
        """The model said how the call ended and what it cost."""
        self._completion = completion

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        invocation, started = self._invocation, self._started
        if exc is None:
            if invocation is not None:
                text = "".join(self._text) if self._text is not None else ""
                self._telemetry._finish(invocation, self._completion, text)
            if not self._cached:
                self._metered.record(
                    time.perf_counter() - started, self._completion, invocation is not None
                )
        elif isinstance(exc, AssistantError):
            self._telemetry._failed(invocation, self._metered, started, exc.error_type, str(exc))
        elif isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            # Our caller stopped the reply (the client went away): not a failure of the
            # model, and no complete call to time.
            if invocation is not None:
                invocation.attributes[STOPPED_ATTRIBUTE] = True
                invocation.stop()
        else:
            error_type = type(exc).__qualname__
            self._telemetry._failed(invocation, self._metered, started, error_type, str(exc))


class _ModelInstruments:
    """The GenAI metrics of one requested model, bound to its labels once rather than
    looked up on every chunk."""

    def __init__(self, metrics: Metrics, provider: str, model: str) -> None:
        # gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model
        self.labels = labels = (OPERATION, provider, model)
        self.duration_ok = metrics.genai_duration.labels(*labels, "")
        self.input_tokens = metrics.genai_tokens.labels(*labels, "input")
        self.output_tokens = metrics.genai_tokens.labels(*labels, "output")
        self.first_chunk = metrics.genai_time_to_first_chunk.labels(*labels)
        self.next_chunk = metrics.genai_time_per_chunk.labels(*labels)

    def record(self, seconds: float, completion: Completion | None, sampled: bool) -> None:
        # An unrecorded request (no invocation) has no trace for an exemplar to point to.
        exemplar = current_exemplar() if sampled else None
        self.duration_ok.observe(seconds, exemplar)
        if completion is None:
            return
        if completion.input_tokens is not None:
            self.input_tokens.observe(completion.input_tokens, exemplar)
        if completion.output_tokens is not None:
            self.output_tokens.observe(completion.output_tokens, exemplar)


def _user(text: str) -> InputMessage:
    return InputMessage(role="user", parts=[TextPart(content=text)])


def _as_messages(history: Sequence[Exchange]) -> list[InputMessage]:
    messages: list[InputMessage] = []
    for exchange in history:
        messages.append(_user(exchange.user))
        messages.append(InputMessage(role="assistant", parts=[TextPart(content=exchange.ai)]))
    return messages
