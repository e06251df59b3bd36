"""The REST contract, in process: every success and error case of DESIGN.md's table.

Each response is also checked against the schema ``/openapi.json`` documents for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from chat_service.app import create_app
from chat_service.assistant import AssistantError, ReplyChunk
from chat_service.chat.domain import Exchange
from chat_service.config import Settings
from tests.support.openapi import validate_response
from tests.support.store_faults import break_probes, break_table, refuse_inserts
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]
ERROR_KEYS = {"status", "message"}


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """The contract holds on both stores: every test here runs on SQLite and PostgreSQL."""
    return backend_settings


async def call(
    client: Client, method: str, path: str, *, documented: str | None = None, **kwargs: Any
) -> tuple[int, Any, Any]:
    """Make a request; return (status, headers, JSON body), checking it is JSON, not HTML."""
    response = await client.request(method, path, **kwargs)
    assert response.content_type == "application/json", await response.text()
    body = await response.json()
    if documented is not None:
        validate_response(documented, method, response.status, body)
    return response.status, response.headers, body


async def post(client: Client, **kwargs: Any) -> tuple[int, Any, Any]:
    return await call(client, "POST", "/chat/message", documented="/chat/message", **kwargs)


async def history(client: Client, query: str = "") -> tuple[int, Any, Any]:
    return await call(client, "GET", "/chat/history" + query, documented="/chat/history")


async def test_history_starts_empty(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, body = await history(client)
    assert (status, body) == (200, [])


async def test_post_answers_success_and_is_in_history(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, body = await post(client, json={"message": "hello there"})
    assert status == 200
    assert set(body) == {"status", "response"}
    assert body["status"] == "Success"
    assert body["response"]

    status, _, items = await history(client)
    assert status == 200
    (item,) = items
    assert (item["user"], item["AI"], item["turn"]) == ("hello there", body["response"], 1)
    assert set(item) == {"user", "AI", "id", "turn", "created_at", "model", "usage"}
    assert item["id"] == "t1"  # its cursor: the conversation was never cut
    # The dummy counts words: two in, as many out as the reply has.
    assert item["model"] == "dummy-1"
    assert item["usage"] == {"input_tokens": 2, "output_tokens": len(body["response"].split())}


async def test_history_is_oldest_first(make_client: MakeClient) -> None:
    client = await make_client()
    for i in range(3):
        assert (await post(client, json={"message": f"m{i}"}))[0] == 200
    _, _, items = await history(client)
    assert [item["user"] for item in items] == ["m0", "m1", "m2"]


async def test_any_content_type_is_parsed_as_json(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, body = await post(
        client, data=b'{"message": "plain"}', headers={"Content-Type": "text/plain"}
    )
    assert (status, body["status"]) == (200, "Success")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"message": "caf\xe9"}', "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"just a string"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "'message' is required"),
        (b'{"text": "hi"}', "'message' is required"),
        (b'{"message": 5}', "must be a string"),
        (b'{"message": null}', "must be a string"),
        (b'{"message": ["hi"]}', "must be a string"),
        (b'{"message": ""}', "must not be blank"),
        (b'{"message": " \\n\\t "}', "must not be blank"),
        (b'{"message": "a", "message": "b"}', "duplicate key"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"message": "hi", "conversation_id": "has space"}', "conversation_id"),
        (b'{"message": "hi", "conversation_id": 7}', "conversation_id"),
    ],
)
async def test_bad_message_bodies_are_400(
    make_client: MakeClient, raw: bytes, expected: str
) -> None:
    client = await make_client(max_body_bytes=1024 * 1024)
    status, _, body = await post(client, data=raw)
    assert status == 400
    assert set(body) == ERROR_KEYS
    assert body["status"] == "error"
    assert expected in body["message"]
    assert (await history(client))[2] == [], "a rejected message must not be stored"


async def test_message_length_limit_is_inclusive(make_client: MakeClient) -> None:
    client = await make_client(max_message_chars=10)
    assert (await post(client, json={"message": "é" * 10}))[0] == 200
    status, _, body = await post(client, json={"message": "é" * 11})
    assert status == 400
    assert body == {"status": "error", "message": "Field 'message' must be at most 10 characters."}


async def test_body_over_the_byte_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048, max_message_chars=100_000)
    status, _, body = await post(client, json={"message": "x" * 4000})
    assert status == 413
    assert set(body) == ERROR_KEYS
    assert body["status"] == "error"
    assert "2048 bytes" in body["message"]


async def test_chunked_body_over_the_byte_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048, max_message_chars=100_000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    status, _, body = await post(client, data=chunks())
    assert status == 413
    assert body["status"] == "error"


async def test_unknown_route_is_404_with_error_shape(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, body = await call(client, "GET", "/no/such/route")
    assert (status, body) == (404, {"status": "error", "message": "Not found."})


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/chat/history"), ("GET", "/chat/message"), ("DELETE", "/chat/history")],
)
async def test_wrong_method_is_405_with_error_shape(
    make_client: MakeClient, method: str, path: str
) -> None:
    client = await make_client()
    status, headers, body = await call(client, method, path)
    assert status == 405
    assert body == {"status": "error", "message": "Method not allowed."}
    assert headers["Allow"]


async def test_history_store_failure_is_the_contract_500(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    await break_table(settings)
    status, _, body = await history(client)
    assert (status, body) == (500, {"message": "Failed to fetch chat history."})


async def test_post_when_reading_fails_is_500(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client()
    await break_table(settings)
    status, _, body = await post(client, json={"message": "hi"})
    assert status == 500
    assert body == {"status": "error", "message": "Failed to load the conversation."}


async def test_post_when_commit_fails_is_500_and_nothing_stored(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    await refuse_inserts(settings)
    status, _, body = await post(client, json={"message": "hi"})
    assert status == 500
    assert body == {"status": "error", "message": "Failed to store the message."}
    assert (await history(client))[2] == []


class FailingAssistant:
    """An assistant that breaks in a way no model server can make it: an unexpected error
    inside the service (a real model failure comes from tests/support's model server)."""

    provider = "test"
    model = "failing"
    server_url: str | None = None

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        if self.error is not None:  # always: the yield only makes this an async generator
            raise self.error
        yield ""

    async def models(self) -> Sequence[str]:
        return (self.model,)

    async def close(self) -> None:
        return None


def app_with_assistant(settings: Settings, assistant: FailingAssistant) -> web.Application:
    return create_app(settings, assistant=assistant)


async def test_assistant_failure_is_500_and_nothing_stored(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(
        app_with_assistant(settings, FailingAssistant(AssistantError("model down")))
    )
    status, _, body = await post(client, json={"message": "hi"})
    assert status == 500
    assert body == {"status": "error", "message": "The assistant failed to reply."}
    assert (await history(client))[2] == []


async def test_unexpected_error_is_a_generic_500_without_details(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(
        app_with_assistant(settings, FailingAssistant(RuntimeError("secret internals")))
    )
    status, _, body = await post(client, json={"message": "hi"})
    assert status == 500
    assert body == {"status": "error", "message": "Internal server error."}
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1, "the error is logged exactly once"
    assert logged[0].exc_info is not None
    assert "secret internals" in str(logged[0].exc_info[1])


async def test_history_pages_follow_the_link_header(make_client: MakeClient) -> None:
    client = await make_client()
    for i in range(5):
        await post(client, json={"message": f"m{i}"})

    status, headers, page = await history(client, "?limit=2")
    assert status == 200
    assert [item["user"] for item in page] == ["m3", "m4"]
    seen = [page]
    while "Link" in headers:
        link = headers["Link"]
        assert link.endswith('>; rel="next"')
        _, headers, page = await history(client, link[link.index("/chat/history") + 13 : -13])
        seen.append(page)
    assert [[item["user"] for item in p] for p in seen] == [["m3", "m4"], ["m1", "m2"], ["m0"]]


async def test_limit_larger_than_history_has_no_link(make_client: MakeClient) -> None:
    client = await make_client()
    await post(client, json={"message": "only"})
    status, headers, page = await history(client, "?limit=50")
    assert (status, len(page)) == (200, 1)
    assert "Link" not in headers


async def test_before_alone_returns_everything_older(make_client: MakeClient) -> None:
    client = await make_client()
    for i in range(4):
        await post(client, json={"message": f"m{i}"})
    _, headers, _ = await history(client, "?limit=1")
    cursor = headers["Link"].split("before=")[1].split(">")[0]
    assert cursor == "t4", "the newest exchange's turn"
    _, headers, page = await history(client, f"?before={cursor}")
    assert [item["user"] for item in page] == ["m0", "m1", "m2"]
    assert "Link" not in headers
    status, headers, page = await history(client, "?limit=2&before=t0")
    assert (status, page) == (200, []), "nothing comes before the first"
    assert "Link" not in headers


async def test_a_cursor_of_an_earlier_version_is_a_400_that_says_so(
    make_client: MakeClient,
) -> None:
    """Earlier versions paged with global exchange ids, bare numbers: a client holding one
    (a page open across an update) is told to load the history again."""
    client = await make_client()
    for i in range(3):
        await post(client, json={"message": f"m{i}"})
    status, headers, body = await history(client, "?limit=1&before=3")
    assert (status, body) == (
        400,
        {
            "status": "error",
            "message": "Query parameter 'before' is a cursor from an earlier version of the "
            "service; load the history again and page with the cursors of its Link headers.",
        },
    )
    assert "Link" not in headers


async def test_conversations_are_separate(make_client: MakeClient) -> None:
    client = await make_client()
    await post(client, json={"message": "in a", "conversation_id": "a"})
    await post(client, json={"message": "in default"})
    _, _, only_a = await history(client, "?conversation_id=a")
    _, _, default = await history(client)
    assert [item["user"] for item in only_a] == ["in a"]
    assert [item["user"] for item in default] == ["in default"]


async def test_link_keeps_a_non_default_conversation(make_client: MakeClient) -> None:
    client = await make_client()
    for i in range(2):
        await post(client, json={"message": f"m{i}", "conversation_id": "room-1"})
    _, headers, _ = await history(client, "?limit=1&conversation_id=room-1")
    assert "conversation_id=room-1" in headers["Link"]


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=-1",
        "?limit=abc",
        "?limit=1.5",
        "?limit=",
        "?limit=1001",
        "?limit=1000000000",
        "?before=0",
        "?before=t" + "9" * 10,
        "?before=-3",
        "?before=cursor",
        "?before=" + "9" * 40,
        "?conversation_id=",
        "?conversation_id=" + "x" * 129,
    ],
)
async def test_bad_history_queries_are_400(make_client: MakeClient, query: str) -> None:
    client = await make_client()
    status, _, body = await history(client, query)
    assert status == 400
    assert set(body) == ERROR_KEYS
    assert body["status"] == "error"


async def test_healthz_and_readyz(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, body = await call(client, "GET", "/healthz", documented="/healthz")
    assert (status, body) == (200, {"status": "ok"})
    # As a probe asks: a PostgreSQL replica is ready once it hears the others' changes, which
    # its LISTEN connection, made as it starts, may not do yet.
    async with asyncio.timeout(10):
        while True:
            status, _, body = await call(client, "GET", "/readyz", documented="/readyz")
            if status == 200:
                break
            assert body == {"status": "error", "message": "The store is not available."}
            await asyncio.sleep(0.05)
    assert body == {"status": "ready"}


async def test_readyz_is_503_when_the_store_cannot_commit(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    await break_probes(settings)
    status, _, body = await call(client, "GET", "/readyz", documented="/readyz")
    assert status == 503
    assert body == {"status": "error", "message": "The store is not available."}
    healthz = await client.get("/healthz")
    assert healthz.status == 200, "liveness does not depend on the store"


async def test_openapi_json_is_the_packaged_document(make_client: MakeClient) -> None:
    client = await make_client()
    status, _, document = await call(client, "GET", "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {"/chat/history", "/chat/message", "/healthz", "/readyz"}


async def test_a_body_that_does_not_arrive_in_time_is_408_and_nothing_is_done(
    make_client: MakeClient,
) -> None:
    client = await make_client(body_timeout_s=0.2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        await asyncio.sleep(5)  # the rest never comes in time
        yield b'hi"}'

    status, headers, body = await post(client, data=trickle())
    # Closed after the answer: the rest of the body would otherwise be read as a request.
    assert headers["Connection"] == "close"
    assert (status, body) == (
        408,
        {
            "status": "error",
            "message": "The request body did not arrive within 0.2 s (CHAT_BODY_TIMEOUT_S).",
        },
    )
    assert (await history(client))[2] == []


async def test_a_body_within_its_time_is_read_whole(make_client: MakeClient) -> None:
    client = await make_client(body_timeout_s=5)

    async def slowly() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        await asyncio.sleep(0.1)
        yield b'hi"}'

    status, headers, body = await post(client, data=slowly())
    assert (status, body["status"]) == (200, "Success")
    assert headers.get("Connection") != "close"
    refused, headers, _ = await post(client, json={"message": ""})
    assert refused == 400
    assert headers.get("Connection") != "close", "other refusals keep the connection"


@pytest.mark.parametrize(
    ("error_type", "message"),
    [
        ("APIConnectionError", "The model server could not be reached."),
        ("AuthenticationError", "The model server refused the service's API key."),
        ("PermissionDeniedError", "The model server refused the service's API key."),
        (
            "RateLimitError",
            "The model server is limiting the service's requests; try again shortly.",
        ),
        ("APITimeoutError", "The model did not answer in time."),
        ("TimeoutError", "The model did not answer in time."),
        ("InternalServerError", "The assistant failed to reply."),
        ("BadRequestError", "The assistant failed to reply."),
    ],
)
async def test_a_model_failure_says_what_went_wrong(
    aiohttp_client: Any, settings: Settings, error_type: str, message: str
) -> None:
    """Unreachable, a refused key, rate-limited, timed out: each told apart, in words that
    quote nothing of the model server's answer; anything else stays generic."""
    failure = AssistantError("the model call failed (HTTP 5xx)", error_type=error_type)
    client = await aiohttp_client(app_with_assistant(settings, FailingAssistant(failure)))
    status, _, body = await post(client, json={"message": "hi"})
    assert (status, body) == (500, {"status": "error", "message": message})
