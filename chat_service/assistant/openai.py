"""Replies from any OpenAI-compatible chat-completions API, through the official SDK.

One client serves OpenAI and every server that speaks its API (Ollama, vLLM, llama.cpp's
server, LiteLLM, gateways): ``OPENAI_BASE_URL`` picks the server, ``CHAT_MODEL`` the model.
Replies are always streamed from the model, with ``stream_options.include_usage`` so the
last chunk carries the model's own token counts.

Retries on 429, 5xx and connection errors are the SDK's (with backoff that honours
``Retry-After``), ``CHAT_MODEL_MAX_RETRIES`` of them. ``CHAT_MODEL_TIMEOUT_S`` bounds every
wait for the model: each read from the server (the SDK's timeout) and, retries and their
backoff included, the time until the reply's first piece arrives. Every request to the
model carries the W3C ``traceparent`` of the span it is made in, so a model server that
traces (vLLM does) joins the request's trace.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Callable, Sequence

import httpx2
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from opentelemetry import propagate

from chat_service.assistant.base import AssistantError, Completion, ReplyChunk
from chat_service.store.base import Exchange

OPENAI_API_HOST = "api.openai.com"
# Attempts of the model call running in this context, counted by the request hook.
_attempts: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "model_call_attempts", default=None
)


class OpenAIAssistant:
    """Streams chat completions from an OpenAI-compatible server."""

    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        system_prompt: str | None = None,
        max_output_tokens: int | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.model = model
        self._system_prompt = system_prompt
        self._timeout_s = timeout_s
        self._on_retry = on_retry
        timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=openai.DefaultAsyncHttpxClient(
                timeout=timeout, event_hooks={"request": [self._before_request]}
            ),
        )
        self.server_url: str | None = str(self._client.base_url)
        limit: int | openai.Omit = openai.omit if max_output_tokens is None else max_output_tokens
        parameter = output_limit_parameter(self._client.base_url.host)
        self._max_tokens = limit if parameter == "max_tokens" else openai.omit
        self._max_completion_tokens = limit if parameter == "max_completion_tokens" else openai.omit

    def messages(
        self, message: str, history: Sequence[Exchange]
    ) -> list[ChatCompletionMessageParam]:
        """The system prompt, the recent exchanges as alternating turns, then ``message``."""
        messages: list[ChatCompletionMessageParam] = []
        if self._system_prompt:
            messages.append({"role": "system", "content": self._system_prompt})
        for exchange in history:
            messages.append({"role": "user", "content": exchange.user})
            messages.append({"role": "assistant", "content": exchange.ai})
        messages.append({"role": "user", "content": message})
        return messages

    async def stream(
        self, message: str, history: Sequence[Exchange]
    ) -> AsyncGenerator[ReplyChunk, None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                chunks = await self._create(self.messages(message, history))
        except TimeoutError:
            raise AssistantError(
                f"no answer from the model within {self._timeout_s:g} s",
                error_type="TimeoutError",
            ) from None
        # Closing the SDK's stream closes the HTTP response: the server sees the client go,
        # whether the reply ended, failed, or our caller stopped it (GeneratorExit here).
        async with chunks:
            iterator = aiter(chunks)
            model, finish_reason, response_id = self.model, "", None
            usage = None
            first = True
            while True:
                try:
                    if first:
                        async with asyncio.timeout_at(deadline):
                            chunk = await anext(iterator)
                    else:
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise AssistantError(
                        f"no reply from the model within {self._timeout_s:g} s",
                        error_type="TimeoutError",
                    ) from None
                except (openai.APIError, httpx2.HTTPError) as exc:
                    raise _failure(exc) from exc
                model = chunk.model or model
                response_id = response_id or chunk.id or None
                usage = chunk.usage or usage
                text, reason = _delta(chunk)
                finish_reason = reason or finish_reason
                if text:
                    first = False
                    yield text
        yield Completion(
            model=model,
            finish_reason=finish_reason or "stop",
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            response_id=response_id,
        )

    async def _create(
        self, messages: list[ChatCompletionMessageParam]
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        token = _attempts.set([0])
        try:
            return await self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=self._max_tokens,
                max_completion_tokens=self._max_completion_tokens,
            )
        except openai.APIError as exc:
            raise _failure(exc) from exc
        finally:
            _attempts.reset(token)

    async def _before_request(self, request: httpx2.Request) -> None:
        """httpx's request hook: runs for every attempt, retries included, in the caller's
        context, so the active span's ``traceparent`` goes along and retries are counted."""
        propagate.inject(request.headers)
        attempts = _attempts.get()
        if attempts is not None:
            attempts[0] += 1
            if attempts[0] > 1 and self._on_retry is not None:
                self._on_retry()

    async def close(self) -> None:
        await self._client.close()


def output_limit_parameter(host: str) -> str:
    """The request parameter that bounds a reply's tokens on ``host``: OpenAI's own API takes
    the current one; compatible servers (Ollama, llama.cpp, older vLLM) know only the older
    one, which OpenAI deprecated."""
    return "max_completion_tokens" if host == OPENAI_API_HOST else "max_tokens"


def _delta(chunk: ChatCompletionChunk) -> tuple[str, str | None]:
    """The text and finish reason a chunk carries (the first choice: we ask for one)."""
    if not chunk.choices:
        return "", None  # the usage chunk
    choice = chunk.choices[0]
    return choice.delta.content or "", choice.finish_reason


def _failure(exc: BaseException) -> AssistantError:
    """An AssistantError naming the SDK's failure by type and status, never its body (an
    error body may quote the request, or a part of the key)."""
    status = getattr(exc, "status_code", None)
    detail = f"HTTP {status}" if status is not None else "no HTTP answer"
    return AssistantError(f"the model call failed ({detail})", error_type=type(exc).__qualname__)
