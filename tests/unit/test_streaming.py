"""``POST /chat/message`` as server-sent events, in process: the events, the errors before
and after the stream starts, and what is stored when a client goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.api.streaming import wants_event_stream
from chat_service.app import create_app
from chat_service.assistant import AssistantError, Completion, ReplyChunk
from chat_service.config import Settings
from chat_service.keys import METRICS
from chat_service.store import Exchange
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
        self, message: str, history: Sequence[Exchange]
    ) -> AsyncGenerator[ReplyChunk, None]:
        try:
            for piece in self.pieces:
                yield piece
                await asyncio.sleep(self.pause_s)
            if self.error is not None:
                raise self.error
            yield Completion(model=self.model, finish_reason="stop")
            self.finished = True
        finally:
            self.closed.set()

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


async def history(client: Client) -> list[dict[str, str]]:
    response = await client.get("/chat/history")
    result: list[dict[str, str]] = await response.json()
    return result


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
    assert await response.json() == {"status": "error", "message": "The assistant failed to reply."}
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
        ("error", {"status": "error", "message": "The assistant failed to reply."}),
    ]
    assert await history(client) == []
    assert client.app is not None
    assert client.app[METRICS].streams_open._value.get() == 0


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


async def test_a_client_that_leaves_stops_the_model_and_keeps_what_it_was_sent(
    aiohttp_client: Any, settings: Settings
) -> None:
    slow = Scripted(["one ", "two ", "three "], pause_s=0.5)
    app = create_app(settings, assistant=slow)
    client: Client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    response = await client.post(
        "/chat/message", json={"message": "go", "conversation_id": "c"}, headers=SSE
    )
    first = await response.content.readuntil(b"\r\n\r\n")
    assert b'"one "' in first
    response.close()  # the reader leaves after the first piece
    await asyncio.wait_for(slow.closed.wait(), 0.4)  # well before the next piece is due
    assert not slow.finished, "the model was stopped, not run to the end"
    for _ in range(100):
        stored = await (await client.get("/chat/history?conversation_id=c")).json()
        if stored:
            break
        await asyncio.sleep(0.01)
    assert stored == [{"user": "go", "AI": "one "}], "what the client was sent"


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream", True),
        ("TEXT/EVENT-STREAM", True),
        ("application/json, text/event-stream;q=0.5", True),
        ("text/event-stream;q=0", False),
        ("application/json", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_which_accept_headers_ask_for_a_stream(accept: str, streams: bool) -> None:
    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request("POST", "/chat/message", headers={"Accept": accept})
    assert wants_event_stream(request) is streams
