"""``POST /chat/message`` as server-sent events, in process: the events, the errors before
and after the stream starts, and what is stored when a client goes away."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from chat_service.api import streaming
from chat_service.api.access_log import EVENT_FIELDS
from chat_service.api.keys import METRICS
from chat_service.api.replies import record_exchange
from chat_service.api.streaming import wants_event_stream
from chat_service.app import create_app
from chat_service.assistant import AssistantError, Completion, ReplyChunk
from chat_service.chat.domain import Exchange
from chat_service.config import Settings
from tests.support.store_faults import refuse_inserts
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """The event stream holds on both stores: every test here runs on SQLite and PostgreSQL."""
    return backend_settings


class Scripted:
    """A model that sends ``pieces`` and then, if given, fails with ``error``."""

    provider = "test"
    model = "scripted"
    server_url: str | None = None

    def __init__(
        self, pieces: Sequence[str], error: Exception | None = None, pause_s: float = 0
    ) -> None:
        self.pieces = pieces
        self.error = error
        self.pause_s = pause_s
        self.closed = asyncio.Event()
        self.finished = False

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        try:
            for piece in self.pieces:
                yield piece
                await asyncio.sleep(self.pause_s)
            if self.error is not None:
                raise self.error
            # The server names the model it ran (a dated version of the one asked for).
            yield Completion(
                model=f"{self.model}-0501",
                finish_reason="stop",
                input_tokens=len(message),
                output_tokens=len(self.pieces),
            )
            self.finished = True
        finally:
            self.closed.set()

    async def models(self) -> Sequence[str]:
        return (self.model,)

    async def close(self) -> None:
        return None


def events(text: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of an event stream, comments left out."""
    parsed = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            parsed.append((fields.get("event", "message"), json.loads(fields["data"])))
    return parsed


async def scripted_client(
    aiohttp_client: Any, settings: Settings, assistant: Scripted, **changes: Any
) -> Client:
    client: Client = await aiohttp_client(
        create_app(settings.replace(**changes), assistant=assistant)
    )
    return client


def streams_open(client: Client) -> float:
    app = cast(web.Application, client.app)  # a TestClient of an application, always
    value: float = app[METRICS].streams_open._value.get()
    return value


async def history(client: Client) -> list[dict[str, str]]:
    """The history's texts, each exchange's message and reply."""
    response = await client.get("/chat/history")
    return [{"user": item["user"], "AI": item["AI"]} for item in await response.json()]


async def test_deltas_then_done(aiohttp_client: Any, settings: Settings) -> None:
    client = await scripted_client(aiohttp_client, settings, Scripted(["Hel", "lo", "!"]))
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert events(await response.text()) == [
        ("delta", {"text": "Hel"}),
        ("delta", {"text": "lo"}),
        ("delta", {"text": "!"}),
        ("done", {"status": "Success", "response": "Hello!"}),
    ]
    assert await history(client) == [{"user": "hi", "AI": "Hello!"}]
    (stored,) = await (await client.get("/chat/history")).json()
    assert (stored["turn"], stored["model"]) == (1, "scripted-0501"), "the model that answered"
    assert stored["usage"] == {"input_tokens": 2, "output_tokens": 3}


async def test_an_empty_reply_is_a_done_with_nothing_before_it(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await scripted_client(aiohttp_client, settings, Scripted([]))
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    assert events(await response.text()) == [("done", {"status": "Success", "response": ""})]
    assert await history(client) == [{"user": "hi", "AI": ""}]


async def test_a_failure_before_the_first_piece_is_a_json_500(
    aiohttp_client: Any, settings: Settings
) -> None:
    failing = Scripted([], AssistantError("down", error_type="APIConnectionError"))
    client = await scripted_client(aiohttp_client, settings, failing)
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    assert response.status == 500
    assert response.content_type == "application/json"
    assert await response.json() == {
        "status": "error",
        "message": "The model server could not be reached.",
    }
    assert await history(client) == []


async def test_a_failure_mid_stream_is_an_error_event_and_nothing_is_stored(
    aiohttp_client: Any, settings: Settings
) -> None:
    failing = Scripted(["half "], AssistantError("cut", error_type="APITimeoutError"))
    client = await scripted_client(aiohttp_client, settings, failing)
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    assert response.status == 200
    assert events(await response.text()) == [
        ("delta", {"text": "half "}),
        ("error", {"status": "error", "message": "The model stopped in the middle of its reply."}),
    ]
    assert await history(client) == []
    assert streams_open(client) == 0


async def test_a_busy_model_is_a_json_503(
    aiohttp_client: Any, settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        model_max_concurrency=1, model_timeout_s=0.1, assistant_latency_ms=1000
    )
    first = asyncio.create_task(
        client.post("/chat/message", json={"message": "a", "conversation_id": "a"})
    )
    await asyncio.sleep(0.05)
    busy = await client.post(
        "/chat/message", json={"message": "b", "conversation_id": "b"}, headers=SSE
    )
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "2"
    assert await busy.json() == {
        "status": "error",
        "message": "The assistant is busy; try again in a moment.",
    }
    assert (await first).status == 200


async def test_a_store_failure_after_the_reply_is_an_error_event(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await scripted_client(aiohttp_client, settings, Scripted(["fine"]))
    await refuse_inserts(settings, "disk says no")
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    assert events(await response.text()) == [
        ("delta", {"text": "fine"}),
        ("error", {"status": "error", "message": "Failed to store the message."}),
    ]


CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def stored_trace_ids(settings: Settings) -> list[str | None]:
    """The trace id column of every stored exchange, read from the database itself."""
    if settings.database_url is None:
        with sqlite3.connect(settings.db_path) as conn:
            return [row[0] for row in conn.execute("SELECT trace_id FROM exchanges ORDER BY id")]
    pg = await asyncpg.connect(settings.database_url)
    try:
        return [row[0] for row in await pg.fetch("SELECT trace_id FROM exchanges ORDER BY id")]
    finally:
        await pg.close()


Recorded = list[tuple[str, dict[str, Any], dict[str, object]]]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """What the stream records for the request's access-log line: the reply, the flags, and
    the fields the real ``record_exchange`` then put on the request."""
    seen: Recorded = []

    def spy(request: Any, turn: Any, exchange: Any, reply: str, **flags: Any) -> None:
        record_exchange(request, turn, exchange, reply, **flags)
        seen.append((reply, flags, request[EVENT_FIELDS]))

    monkeypatch.setattr(streaming, "record_exchange", spy)
    return seen


async def test_a_client_that_leaves_stops_the_model_and_keeps_what_it_was_sent(
    aiohttp_client: Any, settings: Settings, recorded: Recorded
) -> None:
    """The reader leaves after three pieces of five: the model call is closed before the
    fourth is due, and exactly the three pieces it was sent are stored, joined as sent, with
    the request's trace id, and recorded as a stopped stream (the access-log fields: the
    process tests read the line)."""
    slow = Scripted(["one ", "two", "\n", "four ", "five"], pause_s=0.25)
    app = create_app(settings, assistant=slow)
    client: Client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    response = await client.post(
        "/chat/message",
        json={"message": "go", "conversation_id": "c"},
        headers={**SSE, "traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"},
    )
    received = b""
    while received.count(b"event: delta") < 3:
        received += await response.content.readuntil(b"\n\n")
    assert [data for event, data in events(received.decode())] == [
        {"text": "one "},
        {"text": "two"},
        {"text": "\n"},
    ]
    response.close()  # the reader leaves
    await asyncio.wait_for(slow.closed.wait(), 0.2)  # well before the next piece is due
    assert not slow.finished, "the model was stopped, not run to the end"
    # The commit is visible to readers a moment before the cancelled handler resumes to
    # record it: wait for both.
    for _ in range(100):
        stored = await (await client.get("/chat/history?conversation_id=c")).json()
        if stored and recorded:
            break
        await asyncio.sleep(0.01)
    assert [(item["user"], item["AI"]) for item in stored] == [("go", "one two\n")], "as sent"
    # Stopped before the model said what it ran and spent: the model asked, no usage.
    assert (stored[0]["model"], stored[0]["usage"]) == ("scripted", None)
    ((reply, flags, fields),) = recorded
    assert (reply, flags) == ("one two\n", {"streamed": True, "stopped": True})
    assert (fields["message_chars"], fields["reply_chars"], fields["turn"]) == (2, 8, 1)
    assert await stored_trace_ids(settings) == [CALLER_TRACE]
    assert streams_open(client) == 0


async def test_an_unexpected_failure_mid_stream_ends_the_stream_with_an_error_event(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug after the stream opened (here the assistant's, not an AssistantError) cannot
    change the status any more: the stream ends at once with the contract's error event,
    the failure is logged with its traceback, and nothing is stored."""
    buggy = Scripted(["half "], RuntimeError("assistant bug"))
    client = await scripted_client(aiohttp_client, settings, buggy)
    with caplog.at_level(logging.ERROR, "chat_service.api.streaming"):
        response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
        body = await asyncio.wait_for(response.text(), 5)
    assert response.status == 200
    assert events(body) == [
        ("delta", {"text": "half "}),
        ("error", {"status": "error", "message": "Internal server error."}),
    ]
    failures = [r for r in caplog.records if r.name == "chat_service.api.streaming"]
    assert [r.getMessage() for r in failures] == ["the event stream failed after it opened"]
    assert failures[0].exc_info is not None
    assert "assistant bug" in str(failures[0].exc_info[1])
    assert await history(client) == []
    assert streams_open(client) == 0


async def test_an_unexpected_failure_after_the_commit_ends_the_stream_too(
    aiohttp_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange is stored, then something fails before ``done`` went out (a fault
    injected where the access-log fields are recorded): the client gets the error event
    instead of waiting for an end that never comes."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recording failed")

    monkeypatch.setattr(streaming, "record_exchange", broken)
    client = await scripted_client(aiohttp_client, settings, Scripted(["fine"]))
    response = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    body = await asyncio.wait_for(response.text(), 5)
    assert events(body) == [
        ("delta", {"text": "fine"}),
        ("error", {"status": "error", "message": "Internal server error."}),
    ]
    assert streams_open(client) == 0


async def test_a_streamed_exchange_is_stored_with_its_trace_id(
    aiohttp_client: Any, settings: Settings, recorded: Recorded
) -> None:
    """The caller's trace (W3C traceparent) is continued, and the stored exchange names it,
    streamed as plain: an exchange in the history leads to its trace."""
    client = await scripted_client(aiohttp_client, settings, Scripted(["tr", "aced"]))
    for accept in (SSE, {}):
        parent = {"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"}
        response = await client.post(
            "/chat/message", json={"message": "hi"}, headers={**accept, **parent}
        )
        assert response.status == 200
        await response.read()
        assert response.headers["traceresponse"].split("-")[1] == CALLER_TRACE
    assert await stored_trace_ids(settings) == [CALLER_TRACE, CALLER_TRACE]
    ((reply, flags, fields),) = recorded  # the streamed one (the plain path records its own)
    assert (reply, flags, fields["exchange_id"]) == ("traced", {"streamed": True}, 1)


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream", True),
        ("TEXT/EVENT-STREAM", True),
        ("application/json, text/event-stream;q=0.5", True),
        ("application/json,text/event-stream", True),
        ("application/json;q=0.9,text/event-stream", True),
        ("text/html,application/json", False),
        ("text/event-stream; q=0", False),
        ("text/event-stream;q=0.0", False),
        ("text/event-streams", False),
        ("text/event-stream;q=abc", False),
        ("text/event-stream;level=1;Q=0.001", True),
        ("text/event-stream ; q = 0", False),
        ("text/event-stream;q=0.5=x", False),
        ("text/event-stream;q=0", False),
        ("application/json", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_which_accept_headers_ask_for_a_stream(accept: str, streams: bool) -> None:
    request = make_mocked_request("POST", "/chat/message", headers={"Accept": accept})
    assert wants_event_stream(request) is streams


def test_no_accept_header_is_json() -> None:
    assert wants_event_stream(make_mocked_request("POST", "/chat/message")) is False


async def test_a_reply_past_its_deadline_ends_with_an_error_and_stores_nothing(
    aiohttp_client: Any, settings: Settings
) -> None:
    """A model that keeps trickling never trips the per-read timeout; the overall deadline
    (CHAT_REPLY_DEADLINE_S) ends the reply: the plain API answers 504 with the contract's
    shape, the stream an error event after what it sent; the model call is closed, and
    nothing is stored either way."""
    slow = Scripted(["one ", "two ", "three ", "four"], pause_s=0.2)
    client = await scripted_client(aiohttp_client, settings, slow, reply_deadline_s=0.3)
    plain = await client.post("/chat/message", json={"message": "hi"})
    assert plain.status == 504
    assert await plain.json() == {
        "status": "error",
        "message": "The assistant took longer than 0.3 s to reply.",
    }
    assert slow.closed.is_set()
    assert not slow.finished
    slow.closed.clear()
    streamed = await client.post("/chat/message", json={"message": "hi"}, headers=SSE)
    body = await asyncio.wait_for(streamed.text(), 5)
    sent = events(body)
    # What was sent before the deadline (the pieces come 0.2 s apart: one or two of them),
    # then the error; never the whole reply.
    assert sent[0] == ("delta", {"text": "one "})
    assert {event for event, _ in sent[:-1]} == {"delta"}
    assert len(sent) < 5
    assert sent[-1] == (
        "error",
        {"status": "error", "message": "The assistant took longer than 0.3 s to reply."},
    )
    assert slow.closed.is_set()
    assert not slow.finished
    assert await (await client.get("/chat/history")).json() == []
    assert streams_open(client) == 0


async def test_a_reply_within_its_deadline_is_untouched(
    aiohttp_client: Any, settings: Settings
) -> None:
    slow = Scripted(["one ", "two"], pause_s=0.05)
    client = await scripted_client(aiohttp_client, settings, slow, reply_deadline_s=5)
    plain = await client.post("/chat/message", json={"message": "hi"})
    assert (await plain.json())["response"] == "one two"
