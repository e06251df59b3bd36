"""The model server's requests (chat_service/assistant/model_client.py): which failures are
retried, after how long, and what each is called. Against the tests' OpenAI-compatible server
process where a server can show it, and a closed port for a server that is not there."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from chat_service.assistant import AssistantError
from chat_service.assistant.model_client import (
    MAX_BACKOFF_S,
    ModelClient,
    retry_after,
    retry_delay,
)
from tests.support.model import ModelServer
from tests.support.service import free_port

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def client(base_url: str, *, retries: list[float] | None = None, **options: object) -> ModelClient:
    made: dict[str, object] = {
        "base_url": base_url,
        "api_key": "sk-client-test",
        "timeout_s": 2.0,
        "max_retries": 2,
        "max_connections": 4,
        "jitter": lambda: 0.0,
    }
    made.update(options)
    if retries is not None:
        made["on_retry"] = lambda: retries.append(time.monotonic())
    return ModelClient(**made)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "inf"}, float("inf")),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_the_wait_a_server_asks_for(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_a_wait_asked_as_a_date_is_the_time_until_then() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=lambda: now) == 30.0


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [
        (429, {}, 0.7),
        (408, {}, 0.7),
        (409, {}, 0.7),
        (500, {}, 0.7),
        (503, {"retry-after": "2"}, 2.0),
        (429, {"retry-after": "60"}, 60.0),
        (429, {"retry-after": "0"}, 0.7),
        (429, {"retry-after-ms": "500"}, 0.5),
        (429, {"retry-after": "-3"}, 0.7),
        (429, {"retry-after": "61"}, None),
        (429, {"retry-after": "inf"}, None),
        (400, {}, None),
        (401, {}, None),
        (404, {}, None),
        (422, {}, None),
        (400, {"x-should-retry": "true"}, 0.7),
        (500, {"x-should-retry": "false"}, None),
        (500, {"x-should-retry": "maybe"}, 0.7),
    ],
)
def test_which_refusals_are_retried_and_after_how_long(
    status: int, headers: dict[str, str], delay: float | None
) -> None:
    assert retry_delay(status, headers, backoff=0.7) == delay


def test_the_backoff_doubles_to_its_cap_less_up_to_a_quarter_at_random() -> None:
    steady = client("http://127.0.0.1:1", jitter=lambda: 0.0)
    assert [steady._backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, MAX_BACKOFF_S]
    most = client("http://127.0.0.1:1", jitter=lambda: 1.0)
    assert [most._backoff(n) for n in range(2)] == [0.375, 0.75]


async def test_a_server_that_is_not_there_is_retried_then_a_connection_error() -> None:
    retries: list[float] = []
    started = time.monotonic()
    unreachable = client(f"http://127.0.0.1:{free_port()}/v1", retries=retries)
    try:
        with pytest.raises(AssistantError) as failure:
            await unreachable.post("/chat/completions", BODY)
    finally:
        await unreachable.close()
    assert failure.value.error_type == "APIConnectionError"
    assert str(failure.value) == "the model call failed (no HTTP answer)"
    assert len(retries) == 2
    assert retries[1] - retries[0] >= 0.45, "0.5 s, then 1 s before the second retry"
    assert time.monotonic() - started >= 1.45


@pytest.mark.parametrize(
    ("status", "error_type", "requests"),
    [
        (401, "AuthenticationError", 1),
        (403, "PermissionDeniedError", 1),
        (404, "NotFoundError", 1),
        (400, "BadRequestError", 1),
        (422, "UnprocessableEntityError", 1),
        (418, "APIStatusError", 1),
        (409, "ConflictError", 3),
        (429, "RateLimitError", 3),
        (503, "InternalServerError", 3),
    ],
)
async def test_each_refusal_is_named_as_the_sdk_named_it(
    model_server: ModelServer, status: int, error_type: str, requests: int
) -> None:
    model_server.default(status=status, retry_after=0.01)
    refused = client(model_server.base_url)
    try:
        with pytest.raises(AssistantError) as failure:
            await refused.post("/chat/completions", BODY)
    finally:
        await refused.close()
    assert (failure.value.error_type, str(failure.value)) == (
        error_type,
        f"the model call failed (HTTP {status})",
    )
    assert len(model_server.requests()) == requests


async def test_a_server_asking_for_more_than_a_minute_is_not_waited_for(
    model_server: ModelServer,
) -> None:
    model_server.script({"status": 429, "retry_after": 61})
    retries: list[float] = []
    limited = client(model_server.base_url, retries=retries)
    try:
        with pytest.raises(AssistantError) as failure:
            await limited.post("/chat/completions", BODY)
    finally:
        await limited.close()
    assert failure.value.error_type == "RateLimitError"
    assert (retries, len(model_server.requests())) == ([], 1)


async def test_the_request_is_the_body_given_with_the_key_and_reads_to_the_end(
    model_server: ModelServer,
) -> None:
    model = client(model_server.base_url + "/")  # a base URL's trailing slash is not doubled
    try:
        body = await model.post("/chat/completions", BODY)
        read = b""
        while block := await body.read():
            read += block
        body.close()
        assert read.rstrip().endswith(b"data: [DONE]")
    finally:
        await model.close()
    [request] = model_server.requests()
    assert request["body"] == BODY
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-client-test"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["accept"] == "text/event-stream"
    assert request["headers"]["user-agent"] == "chat-service"
    with pytest.raises(RuntimeError, match="closed"):  # a closed client asks nothing more
        await model.post("/chat/completions", BODY)


async def test_at_most_max_connections_requests_are_open_at_once(
    model_server: ModelServer,
) -> None:
    """The pool holds ``max_connections``: a request beyond them waits for a connection
    (the model slots keep the calls under it; this is the last guard)."""
    model_server.default(chunks=["a ", "b ", "c"], chunk_delay_s=0.3)
    pooled = client(model_server.base_url, max_connections=2)
    try:
        bodies = [asyncio.create_task(pooled.post("/chat/completions", BODY)) for _ in range(3)]
        await asyncio.sleep(0.4)
        assert len(model_server.requests()) == 2
        done, waiting = await asyncio.wait(bodies, timeout=0.1)
        assert (len(done), len(waiting)) == (2, 1)
        for task in done:
            body = task.result()
            while await body.read():
                pass
            body.close()  # read to the end: its connection serves the one waiting
        third = await asyncio.wait_for(waiting.pop(), timeout=2)
        assert len(model_server.requests()) == 3
        third.close()
    finally:
        await pooled.close()
