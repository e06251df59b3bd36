"""CHAT_CORS_ORIGINS: preflights answered before identity and limits, headers on every API
response of an allowed origin (errors and streams included), nothing for any other origin."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.unit.conftest import MakeClient

ALLOWED = "https://app.example"
OTHER = "https://evil.example"
KEY = "cors-test-key-0123456789"
EXPOSED = "Link, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID, traceresponse"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Request-ID, traceparent, tracestate"


async def preflight(
    client: TestClient[Any, Any], path: str, origin: str, method: str = "POST"
) -> Any:
    return await client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def varies_on_origin(response: Any) -> bool:
    return any(
        "origin" in (part.strip().lower() for part in value.split(","))
        for value in response.headers.getall("Vary", [])
    )


async def test_a_preflight_from_an_allowed_origin_passes_before_keys_and_limits(
    make_client: MakeClient,
) -> None:
    # A bucket of one request: had the preflights been counted, the GET below would get 429;
    # had they met the key check, 401.
    client = await make_client(
        cors_origins=(ALLOWED,), api_keys=(KEY,), rate_limit_rps=0.001, rate_limit_burst=1
    )
    for path in ("/chat/message", "/chat/history", "/chat/conversations/x", "/openapi.json"):
        response = await preflight(client, path, ALLOWED, "PATCH")
        assert response.status == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert response.headers["Access-Control-Allow-Methods"] == (
            "GET, POST, PATCH, DELETE, OPTIONS"
        )
        assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert varies_on_origin(response)
        assert await response.read() == b""
    served = await client.get(
        "/chat/history", headers={"Origin": ALLOWED, "Authorization": f"Bearer {KEY}"}
    )
    assert served.status == 200
    assert served.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_a_preflight_from_another_origin_is_refused(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=(ALLOWED,))
    for origin in (OTHER, ALLOWED + ":8443", ALLOWED.upper(), "null"):
        response = await preflight(client, "/chat/message", origin)
        assert response.status == 403, origin
        assert await response.json() == {
            "status": "error",
            "message": "This origin may not call the API (CHAT_CORS_ORIGINS).",
        }
        assert not any(name.startswith("Access-Control-") for name in response.headers), origin
        assert varies_on_origin(response)


async def test_responses_to_an_allowed_origin_carry_the_headers(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=(ALLOWED, "http://localhost:8080"))
    responses = {
        "history": await client.get("/chat/history", headers={"Origin": ALLOWED}),
        "message": await client.post(
            "/chat/message", json={"message": "hi"}, headers={"Origin": ALLOWED}
        ),
        "bad request": await client.post(
            "/chat/message", json={"message": " "}, headers={"Origin": ALLOWED}
        ),
        "not found": await client.get("/chat/nope", headers={"Origin": ALLOWED}),
        "document": await client.get("/openapi.json", headers={"Origin": ALLOWED}),
    }
    assert [r.status for r in responses.values()] == [200, 200, 400, 404, 200]
    for name, response in responses.items():
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED, name
        assert response.headers["Access-Control-Expose-Headers"] == EXPOSED, name
        assert "Access-Control-Allow-Credentials" not in response.headers, name
        assert varies_on_origin(response), name
    other = await client.get("/chat/history", headers={"Origin": "http://localhost:8080"})
    assert other.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"


async def test_errors_before_the_handler_carry_the_headers(make_client: MakeClient) -> None:
    """401 and 429 come from middlewares inside CORS's: a script must be able to read them."""
    client = await make_client(
        cors_origins=(ALLOWED,), api_keys=(KEY,), rate_limit_rps=0.001, rate_limit_burst=1
    )
    unauthorized = await client.get("/chat/history", headers={"Origin": ALLOWED})
    assert unauthorized.status == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert unauthorized.headers["Access-Control-Expose-Headers"] == EXPOSED
    auth = {"Origin": ALLOWED, "Authorization": f"Bearer {KEY}"}
    for _ in range(3):  # the bucket holds one request (the 401's may have been another's)
        limited = await client.get("/chat/history", headers=auth)
        if limited.status == 429:
            break
    assert limited.status == 429
    assert limited.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in limited.headers


async def test_a_streamed_reply_carries_the_headers(make_client: MakeClient) -> None:
    """A stream's headers leave before its handler returns."""
    client = await make_client(cors_origins=(ALLOWED,))
    response = await client.post(
        "/chat/message",
        json={"message": "stream it"},
        headers={"Origin": ALLOWED, "Accept": "text/event-stream"},
    )
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "event: done" in await response.text()


async def test_another_origin_gets_no_cors_headers(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=(ALLOWED,))
    response = await client.get("/chat/history", headers={"Origin": OTHER})
    assert response.status == 200, "served: the browser withholds it from the script"
    assert not any(name.startswith("Access-Control-") for name in response.headers)
    assert varies_on_origin(response)


async def test_any_origin_with_a_star(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=("*",))
    allowed = await preflight(client, "/chat/message", OTHER)
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.get("/chat/history", headers={"Origin": OTHER})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_only_the_api_and_its_document(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=("*",))
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await client.get(path, headers={"Origin": ALLOWED})
        assert response.status == 200, path
        assert "Access-Control-Allow-Origin" not in response.headers, path
        assert not varies_on_origin(response), path
    assert (await preflight(client, "/healthz", ALLOWED, "GET")).status == 405


async def test_off_by_default(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await preflight(client, "/chat/message", ALLOWED)).status == 405
    response = await client.get("/chat/history", headers={"Origin": ALLOWED})
    assert response.status == 200
    assert not any(name.startswith("Access-Control-") for name in response.headers)
    assert not varies_on_origin(response)


async def test_a_plain_options_request_is_not_a_preflight(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=(ALLOWED,))
    response = await client.options("/chat/history", headers={"Origin": ALLOWED})
    assert response.status == 405
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
