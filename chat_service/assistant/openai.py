"""Replies from any OpenAI-compatible chat-completions API.

One client serves OpenAI and every server that speaks its API (Ollama, vLLM, llama.cpp's
server, LiteLLM, gateways): ``OPENAI_BASE_URL`` picks the server, ``CHAT_MODEL`` the model.
Replies are always streamed from the model, with ``stream_options.include_usage`` so the
last chunk carries the model's own token counts. The request goes straight to the server
through one pooled aiohttp session (model_client.py, which retries it as the SDK did); the
body is read a block at a time and its chunks decoded in ``completion_stream.py``. The same
client lists the server's models (``GET /models``).

Retries on 408, 409, 429, 5xx and connection errors, with backoff that honours ``Retry-After``,
``CHAT_MODEL_MAX_RETRIES`` of them. ``CHAT_MODEL_TIMEOUT_S`` bounds every wait for the
model: each read from the server and, retries and their backoff included, the time until
the reply's first piece arrives. Every request to the model carries the W3C
``traceparent`` of the span it is made in, so a model server that traces (vLLM does) joins
the request's trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from urllib.parse import urlsplit

import orjson

from chat_service.assistant.base import AssistantError, Completion, ReplyChunk
from chat_service.assistant.completion_stream import EventReader
from chat_service.assistant.model_client import ModelClient
from chat_service.chat.domain import Exchange

OPENAI_API_HOST = "api.openai.com"
DEFAULT_BASE_URL = f"https://{OPENAI_API_HOST}/v1"
# A message of the request: its role and its text.
Message = dict[str, str]


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
        self.server_url: str | None = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/"
        self._http = ModelClient(
            base_url=self.server_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            max_connections=max_connections,
            on_retry=on_retry,
        )
        self._limits: dict[str, int] = {}
        if max_output_tokens is not None:
            host = urlsplit(self.server_url).hostname or ""
            self._limits[output_limit_parameter(host)] = max_output_tokens

    def messages(
        self, message: str, history: Sequence[Exchange], system_prompt: str | None = None
    ) -> list[Message]:
        """The system prompt (``system_prompt``, else the deployment's; none when empty),
        the recent exchanges as alternating turns, then ``message``."""
        messages: list[Message] = []
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
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        body = {
            "model": asked,
            "messages": self.messages(message, history, system_prompt),
            "stream": True,
            "stream_options": {"include_usage": True},
            **self._limits,
        }
        try:
            async with asyncio.timeout_at(deadline):
                body_read = await self._http.post("/chat/completions", body)
        except TimeoutError:
            raise AssistantError(
                f"no answer from the model within {self._timeout_s:g} s",
                error_type="TimeoutError",
            ) from None
        reader = EventReader()
        answered, finish_reason, response_id = asked, "", None
        input_tokens = output_tokens = None
        first = True
        # One step per block the server sent, however many chunks it holds. Leaving this
        # block closes the body: the server sees the client go, whether the reply ended,
        # failed, or our caller stopped it (GeneratorExit at the yield).
        try:
            while True:
                try:
                    if first:
                        async with asyncio.timeout_at(deadline):
                            block = await body_read.read()
                    else:
                        block = await body_read.read()
                    if not block:
                        break
                    chunks = reader.feed(block)
                except TimeoutError:
                    raise AssistantError(
                        f"no reply from the model within {self._timeout_s:g} s",
                        error_type="TimeoutError",
                    ) from None
                pieces = []
                for chunk in chunks:
                    answered = chunk.model or answered
                    response_id = response_id or chunk.response_id
                    if chunk.input_tokens is not None or chunk.output_tokens is not None:
                        input_tokens, output_tokens = chunk.input_tokens, chunk.output_tokens
                    finish_reason = chunk.finish_reason or finish_reason
                    if chunk.text:
                        pieces.append(chunk.text)
                if pieces:
                    first = False
                    yield "".join(pieces)
                if reader.error is not None:  # after the pieces that came before it
                    raise AssistantError(str(reader.error), error_type="APIError") from (
                        reader.error
                    )
        finally:
            body_read.close()
        yield Completion(
            model=answered,
            finish_reason=finish_reason or "stop",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            response_id=response_id,
        )

    async def models(self) -> Sequence[str]:
        """The ids the server's ``GET /models`` lists, sorted."""
        raw = await (await self._http.get("/models")).read_all()
        try:
            return sorted(listed_ids(raw))
        except ValueError as exc:
            raise AssistantError(
                "the model server's list of models could not be read",
                error_type="APIResponseValidationError",
            ) from exc

    async def close(self) -> None:
        await self._http.close()


def listed_ids(raw: bytes) -> set[str]:
    """The model ids of a ``GET /models`` body (``{"data": [{"id": ...}, ...]}``); ValueError
    when it is not one."""
    try:
        ids = {model["id"] for model in orjson.loads(raw)["data"]}
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError("not a list of models") from exc
    if not all(isinstance(model_id, str) for model_id in ids):
        raise ValueError("a model id that is not a string")
    return ids


def output_limit_parameter(host: str) -> str:
    """The request parameter that bounds a reply's tokens on ``host``: OpenAI's own API takes
    the current one; compatible servers (Ollama, llama.cpp, older vLLM) know only the older
    one, which OpenAI deprecated."""
    return "max_completion_tokens" if host == OPENAI_API_HOST else "max_tokens"
