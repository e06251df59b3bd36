"""The test model server (tests/support/model_server.py) proven with the real openai SDK.

Every test of the OpenAI assistant, the integration tests and the benchmark trust this server
to speak OpenAI's chat-completions wire format and to inject its faults as asked. If it drifted
(a chunk the SDK cannot parse, a usage chunk sent unasked, a retry header the SDK ignores, a
disconnect it never notices), those tests would pass or fail for the wrong reason. So here the
unmodified SDK, and a raw HTTP client for what the SDK hides, talk to it directly; every expected
value is written out here, not read from the server's code.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI, AsyncStream, OpenAI
from openai.types.chat import ChatCompletionChunk

from tests.support.model import ModelServer
from tests.support.model_server import model_seconds

KEY = "sk-server-test-key"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello there"},
    {"role": "assistant", "content": "Reply 1: hello there"},
    {"role": "user", "content": "how  are you"},
]
# The default reply: "Reply {user messages}: {last user message}", split after each run of
# whitespace; prompt tokens count the whitespace-separated words of every message.
EXPECTED_TEXT = "Reply 2: how  are you"
EXPECTED_PIECES = ["Reply ", "2: ", "how  ", "are ", "you"]
EXPECTED_PROMPT_TOKENS = 2 + 2 + 4 + 3


@pytest.fixture
async def client(model_server: ModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        api_key=KEY, base_url=model_server.base_url, max_retries=0, timeout=5
    ) as made:
        yield made


@pytest.fixture
def sync_client(model_server: ModelServer) -> Iterator[OpenAI]:
    with OpenAI(api_key=KEY, base_url=model_server.base_url, max_retries=0, timeout=5) as made:
        yield made


def wait_for_disconnect(model_server: ModelServer, timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (record := model_server.requests()[0])["disconnected_at"] is None:
        assert time.monotonic() < deadline, "the server never noticed the client leave"
        time.sleep(0.01)
    return record


async def read_into(stream: AsyncStream[ChatCompletionChunk], pieces: list[str]) -> None:
    """Append each chunk's text to ``pieces``, so they survive the stream failing."""
    async for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")


async def test_a_plain_reply_parses(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-test"
    assert abs(completion.created - time.time()) < 5
    [choice] = completion.choices
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert (choice.message.role, choice.message.content) == ("assistant", EXPECTED_TEXT)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == EXPECTED_PROMPT_TOKENS
    assert completion.usage.completion_tokens == len(EXPECTED_PIECES)
    assert completion.usage.total_tokens == EXPECTED_PROMPT_TOKENS + len(EXPECTED_PIECES)
    again = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert again.id != completion.id


async def test_a_streamed_reply_parses_with_the_usage_chunk_when_asked(
    client: AsyncOpenAI,
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk.model for chunk in chunks} == {"gpt-test"}
    first, *content, finish, usage = chunks
    assert (first.choices[0].delta.role, first.choices[0].delta.content) == ("assistant", "")
    assert [c.choices[0].delta.content for c in content] == EXPECTED_PIECES
    assert all(c.choices[0].finish_reason is None and c.usage is None for c in content)
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (
        EXPECTED_PROMPT_TOKENS,
        len(EXPECTED_PIECES),
    )


async def test_no_usage_chunk_unless_asked(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_the_wire_format_is_server_sent_events_ending_with_done(
    model_server: ModelServer,
) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{model_server.base_url}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        raw = (await response.read()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""], "[DONE] is the last event"
    assert all(event.startswith("data: ") for event in events[:-1])
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert "usage" not in chunks[0], "no usage key at all unless include_usage"
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]


async def test_chunks_are_written_as_they_are_made(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script({"chunks": ["a ", "b ", "c"], "chunk_delay_s": 0.5})
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 3, "one event per chunk"
    # The last piece is made a second after the first: sent as made, not held for the rest,
    # they arrive about that far apart (half of it, so that a test process descheduled for a
    # moment still passes).
    assert arrivals[2] - arrivals[0] >= 0.5, f"the first piece waited for the rest: {arrivals}"


async def test_a_behaviour_sets_the_pieces_model_and_finish_reason(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script(
        {"chunks": ["Hel", "lo", " wor", "ld"], "model": "gpt-test-2026-01-01"},
        {"reply": "cut  short", "finish_reason": "length"},
    )
    stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces == ["Hel", "lo", " wor", "ld"]
    assert {chunk.model for chunk in chunks} == {"gpt-test-2026-01-01"}
    plain = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert plain.choices[0].message.content == "cut  short"
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None
    assert plain.usage.completion_tokens == 2


async def test_the_script_is_used_in_order_then_the_default_then_reset(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script({"reply": "one"}, {"reply": "two"})
    model_server.default(reply="always")

    async def ask() -> str | None:
        completion = await client.chat.completions.create(model="m", messages=MESSAGES)
        return completion.choices[0].message.content

    assert [await ask() for _ in range(4)] == ["one", "two", "always", "always"]
    assert [r["index"] for r in model_server.requests()] == [0, 1, 2, 3]
    model_server.script({"reply": "queued"})
    model_server.reset()
    assert model_server.requests() == []
    assert await ask() == EXPECTED_TEXT, "reset clears the queue and the default"


async def test_a_429_with_retry_after_is_retried_by_the_sdk(
    model_server: ModelServer,
) -> None:
    model_server.script({"status": 429, "retry_after": 0.4})
    async with AsyncOpenAI(api_key=KEY, base_url=model_server.base_url, max_retries=1) as client:
        completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == EXPECTED_TEXT
    first, second = model_server.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["received_at"] - first["received_at"] >= 0.35, "Retry-After was honoured"


async def test_error_bodies_are_openais(model_server: ModelServer) -> None:
    body = {"model": "m", "messages": MESSAGES}
    model_server.script(
        {"status": 429, "retry_after": 7},
        {"status": 500, "error_message": "failed reading {api_key}"},
    )
    url = f"{model_server.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url, json=body) as limited:
            assert limited.status == 429
            assert limited.headers["Retry-After"] == "7"
            assert limited.content_type == "application/json"
            error = (await limited.json())["error"]
            assert (error["type"], error["code"], error["param"]) == (
                "requests",
                "rate_limit_exceeded",
                None,
            )
        async with session.post(url, json=body) as failed:
            assert failed.status == 500
            assert "Retry-After" not in failed.headers
            error = (await failed.json())["error"]
            assert error["type"] == "server_error"
            assert error["message"] == f"failed reading {KEY}", "{api_key} is the bearer token"


async def test_a_persistent_500_raises_after_the_retries(model_server: ModelServer) -> None:
    model_server.default(status=500, error_message="upstream broke")
    async with AsyncOpenAI(api_key=KEY, base_url=model_server.base_url, max_retries=1) as client:
        with pytest.raises(openai.InternalServerError) as failure:
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert failure.value.status_code == 500
    assert failure.value.body == {
        "message": "upstream broke",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert [r["status"] for r in model_server.requests()] == [500, 500]


async def test_a_401_is_an_authentication_error(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script({"status": 401, "error_message": "Incorrect API key provided"})
    with pytest.raises(openai.AuthenticationError) as failure:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert failure.value.code == "invalid_api_key"
    assert failure.value.type == "invalid_request_error"


async def test_a_hang_times_the_sdk_out_and_the_server_sees_it_leave(
    model_server: ModelServer,
) -> None:
    model_server.default(hang=True)
    started = time.monotonic()
    async with AsyncOpenAI(
        api_key=KEY, base_url=model_server.base_url, max_retries=0, timeout=0.5
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert 0.45 <= time.monotonic() - started < 2
    record = await asyncio.to_thread(wait_for_disconnect, model_server)
    assert (record["status"], record["completed"]) == (None, False)
    assert record["disconnected_at"] - record["received_at"] < 1.5


async def test_a_stall_after_some_chunks_times_out_mid_stream(model_server: ModelServer) -> None:
    model_server.script({"hang_after_chunks": 2})
    async with AsyncOpenAI(
        api_key=KEY, base_url=model_server.base_url, max_retries=0, timeout=0.5
    ) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces: list[str] = []
        with pytest.raises(openai.APITimeoutError):
            await read_into(stream, pieces)
    assert "".join(pieces) == "Reply 2: "
    record = await asyncio.to_thread(wait_for_disconnect, model_server)
    assert (record["status"], record["chunks_sent"], record["completed"]) == (200, 2, False)


async def test_a_slow_first_byte_is_slow(client: AsyncOpenAI, model_server: ModelServer) -> None:
    model_server.script({"first_chunk_delay_s": 0.4})
    started = time.monotonic()
    completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.35
    assert completion.choices[0].message.content == EXPECTED_TEXT


async def test_a_stamped_first_piece_carries_the_servers_own_time_to_it(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script(
        {"chunks": ["a ", "b"], "first_chunk_delay_s": 0.2, "stamp_first_chunk": True}
    )
    started = time.perf_counter()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    pieces: list[str] = []
    async for chunk in stream:
        if chunk.choices and (content := chunk.choices[0].delta.content):
            if not pieces:
                waited = time.perf_counter() - started
            pieces.append(content)
    first, second = pieces
    seconds = model_seconds(first)
    assert seconds is not None, first
    # The server's own time includes its delay and cannot exceed the client's wait.
    assert 0.2 <= seconds <= waited
    assert first == f"[model {seconds:.6f} s] a "
    assert second == "b", "only the first piece is stamped"
    assert model_seconds("a [model 0.100000 s] ") is None
    assert model_seconds("[model 1 s] a") is None


def test_the_benchmarks_server_streams_on_uvloop_and_records_nothing(tmp_path: Path) -> None:
    server = ModelServer(tmp_path, options=("--no-records", "--uvloop")).start()
    try:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
        pieces = [
            json.loads(event.removeprefix("data: "))["choices"][0]["delta"].get("content")
            for event in raw.split("\n\n")[:-2]
        ]
        assert "".join(piece or "" for piece in pieces) == EXPECTED_TEXT
        assert raw.endswith("data: [DONE]\n\n")
        assert server.requests() == []
        # uvloop's event loop is loaded in the server's process.
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "/uvloop/loop." in maps
    finally:
        server.kill()


async def test_closing_a_stream_early_is_recorded_as_a_disconnect(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    model_server.script({"reply": "a b c d e f g h i j", "chunk_delay_s": 0.2})
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    closed = time.time()
    await stream.close()
    record = await asyncio.to_thread(wait_for_disconnect, model_server)
    assert record["disconnected_at"] - closed < 1
    assert record["completed"] is False
    assert 1 <= record["chunks_sent"] < 10
    assert record["ended_at"] is not None


def test_closing_a_sync_response_is_recorded_as_a_disconnect(
    sync_client: OpenAI, model_server: ModelServer
) -> None:
    model_server.script({"reply": "a b c d e f g h i j", "chunk_delay_s": 0.2})
    stream = sync_client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(stream)
    closed = time.time()
    stream.response.close()
    record = wait_for_disconnect(model_server)
    assert record["disconnected_at"] - closed < 1
    assert record["completed"] is False


async def test_the_record_shows_what_was_sent(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    before = time.time()
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=64,
        temperature=0.5,
        extra_headers={"traceparent": traceparent},
    )
    [_ async for _ in stream]
    await client.chat.completions.create(model="other", messages=MESSAGES[:2])
    first, second = model_server.requests()
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["traceparent"] == traceparent
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["body"]["messages"] == MESSAGES
    assert first["body"]["model"] == "gpt-test"
    assert first["body"]["stream_options"] == {"include_usage": True}
    assert (first["body"]["max_completion_tokens"], first["body"]["temperature"]) == (64, 0.5)
    assert (first["stream"], first["status"], first["completed"]) == (True, 200, True)
    assert first["chunks_sent"] == len(EXPECTED_PIECES)
    assert first["disconnected_at"] is None
    assert before <= first["received_at"] <= first["ended_at"] <= second["received_at"]
    assert (second["index"], second["stream"], second["completed"]) == (1, False, True)
    assert "traceparent" not in second["headers"]


async def test_models_lists_its_own_and_the_models_asked_for(
    client: AsyncOpenAI, model_server: ModelServer
) -> None:
    await client.chat.completions.create(model="gpt-a", messages=MESSAGES)
    await client.chat.completions.create(model="gpt-b", messages=MESSAGES)
    models = [model.id async for model in client.models.list()]
    assert sorted(models) == ["gpt-a", "gpt-b", "gpt-test", "gpt-test-mini"]
