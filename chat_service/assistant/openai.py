"""Replies from any OpenAI-compatible chat-completions API, through the official SDK.

One client serves OpenAI and every server that speaks its API (Ollama, vLLM, llama.cpp's
server, LiteLLM, gateways): ``OPENAI_BASE_URL`` picks the server, ``CHAT_MODEL`` the model.
Replies are always streamed from the model, with ``stream_options.include_usage`` so the
last chunk carries the model's own token counts. The SDK sends the request and hands back
the raw streaming response, whose chunks are decoded in ``completion_stream.py`` (the SDK's
typed chunk models cost more CPU than everything else a relayed chunk takes).

Retries on 429, 5xx and connection errors are the SDK's (with backoff that honours
``Retry-After``), ``CHAT_MODEL_MAX_RETRIES`` of them. ``CHAT_MODEL_TIMEOUT_S`` bounds every
wait for the model: each read from the server (the SDK's timeout) and, retries and their
backoff included, the time until the reply's first piece arrives. Every request to the
model carries the W3C ``traceparent`` of the span it is made in, so a model server that
traces (vLLM does) joins the request's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import propagate

from chat_service.assistant.base import AssistantError, Completion, ReplyChunk
from chat_service.assistant.completion_stream import StreamError, read_chunks
from chat_service.chat.domain import Exchange

OPENAI_API_HOST = "api.openai.com"
# Idle connections kept for reuse; more than this many at once are opened as needed.
KEEPALIVE_CONNECTIONS = 100
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
        max_connections: int = 1000,
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
            # aiohttp under the SDK (its `aiohttp` extra) rather than httpx's own transport:
            # a relayed chunk costs a third less CPU, and taking a connection from the pool
            # does not scan every open one, which grows with the streams open at once.
            http_client=openai.DefaultAioHttpClient(
                timeout=timeout,
                limits=httpx2.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=min(max_connections, KEEPALIVE_CONNECTIONS),
                ),
                event_hooks={"request": [self._before_request]},
            ),
        )
        self.server_url: str | None = str(self._client.base_url)
        limit: int | openai.Omit = openai.omit if max_output_tokens is None else max_output_tokens
        parameter = output_limit_parameter(self._client.base_url.host)
        self._max_tokens = limit if parameter == "max_tokens" else openai.omit
        self._max_completion_tokens = limit if parameter == "max_completion_tokens" else openai.omit

    def messages(
        self, message: str, history: Sequence[Exchange], system_prompt: str | None = None
    ) -> list[ChatCompletionMessageParam]:
        """The system prompt (``system_prompt``, else the deployment's; none when empty),
        the recent exchanges as alternating turns, then ``message``."""
        messages: list[ChatCompletionMessageParam] = []
        prompt = self._system_prompt if system_prompt is None else system_prompt
        if prompt:
            messages.append({"role": "system", "content": prompt})
        for exchange in history:
            messages.append({"role": "user", "content": exchange.user})
            messages.append({"role": "assistant", "content": exchange.ai})
        messages.append({"role": "user", "content": message})
        return messages

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        asked = model or self.model
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        # Leaving this block closes the HTTP response: the server sees the client go,
        # whether the reply ended, failed, or our caller stopped it (GeneratorExit here).
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._open(
                        stack, asked, self.messages(message, history, system_prompt)
                    )
            except TimeoutError:
                raise AssistantError(
                    f"no answer from the model within {self._timeout_s:g} s",
                    error_type="TimeoutError",
                ) from None
            chunks = aiter(read_chunks(response.iter_lines()))
            answered, finish_reason, response_id = asked, "", None
            input_tokens = output_tokens = None
            first = True
            while True:
                try:
                    if first:
                        async with asyncio.timeout_at(deadline):
                            chunk = await anext(chunks)
                    else:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise AssistantError(
                        f"no reply from the model within {self._timeout_s:g} s",
                        error_type="TimeoutError",
                    ) from None
                except StreamError as exc:
                    raise AssistantError(str(exc), error_type=openai.APIError.__qualname__) from exc
                except httpx2.HTTPError as exc:
                    raise _failure(exc) from exc
                answered = chunk.model or answered
                response_id = response_id or chunk.response_id
                if chunk.input_tokens is not None or chunk.output_tokens is not None:
                    input_tokens, output_tokens = chunk.input_tokens, chunk.output_tokens
                finish_reason = chunk.finish_reason or finish_reason
                if chunk.text:
                    first = False
                    yield chunk.text
        yield Completion(
            model=answered,
            finish_reason=finish_reason or "stop",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            response_id=response_id,
        )

    async def _open(
        self,
        stack: contextlib.AsyncExitStack,
        model: str,
        messages: list[ChatCompletionMessageParam],
    ) -> openai.AsyncAPIResponse[Any]:
        """Send the request (the SDK retries it) and return the streaming response once its
        status is a success; ``stack`` closes it."""
        token = _attempts.set([0])
        try:
            return await stack.enter_async_context(
                self._client.chat.completions.with_streaming_response.create(
                    model=model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    max_tokens=self._max_tokens,
                    max_completion_tokens=self._max_completion_tokens,
                )
            )
        except openai.APIError as exc:
            raise _failure(exc) from exc
        finally:
            _attempts.reset(token)

    async def models(self) -> Sequence[str]:
        """The ids the server's ``GET /models`` lists, sorted."""
        try:
            page = await self._client.models.list()
            return sorted({model.id async for model in page})
        except openai.APIError as exc:
            raise _failure(exc) from exc
        except httpx2.HTTPError as exc:
            raise _failure(exc) from exc

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


def _failure(exc: BaseException) -> AssistantError:
    """An AssistantError naming the failure by type and status, never its body (an error
    body may quote the request, or a part of the key). A timeout or a broken connection
    while the reply is read has the name the SDK gives it before the reply starts."""
    status = getattr(exc, "status_code", None)
    detail = f"HTTP {status}" if status is not None else "no HTTP answer"
    if isinstance(exc, httpx2.TimeoutException):
        error_type = openai.APITimeoutError.__qualname__
    elif isinstance(exc, httpx2.HTTPError):
        error_type = openai.APIConnectionError.__qualname__
    else:
        error_type = type(exc).__qualname__
    return AssistantError(f"the model call failed ({detail})", error_type=error_type)
