"""Cross-site request forgery: state-changing ``/chat`` requests that a browser says come
from a page elsewhere are refused, before they act; everything else passes unchanged.

The browser's own test (a real page on another origin) is tests/e2e/test_csrf_page.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from chat_service.api.csrf import same_host
from tests.unit.conftest import MakeClient

LISTED = "https://app.example"
REFUSED = {
    "status": "error",
    "message": "Cross-site requests may not change anything here: "
    "this page's origin is not allowed (CHAT_CORS_ORIGINS).",
}


async def post_message(client: Any, headers: dict[str, str]) -> Any:
    return await client.post(
        "/chat/message", json={"message": "hi", "conversation_id": "c"}, headers=headers
    )


async def stored(client: Any) -> list[Any]:
    response = await client.get("/chat/history?conversation_id=c")
    history: list[Any] = await response.json()
    return history


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        # Same site, other origin (another port, a sibling subdomain): not the page itself.
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.app.example"},
        # No Sec-Fetch-Site (an older browser): the Origin decides.
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame, a file:// page
        {"Origin": "http://127.0.0.1:1"},  # the service's host, another port
        {"Origin": "http://127.0.0.1:not-a-port"},
    ],
)
async def test_a_write_from_a_page_elsewhere_is_refused(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client()
    response = await post_message(client, headers)
    assert response.status == 403
    assert await response.json() == REFUSED
    assert await stored(client) == [], "refused before it acted"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, an SDK, a server: no browser
        {"Sec-Fetch-Site": "same-origin"},  # the service's own page
        {"Sec-Fetch-Site": " Same-Origin "},
        {"Sec-Fetch-Site": "none"},  # typed by the user
        # An origin in CHAT_CORS_ORIGINS, from another site or a sibling.
        {"Sec-Fetch-Site": "cross-site", "Origin": LISTED},
        {"Sec-Fetch-Site": "same-site", "Origin": LISTED},
        {"Origin": LISTED},
    ],
)
async def test_a_write_from_the_page_itself_a_listed_origin_or_no_browser_passes(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client(cors_origins=(LISTED,))
    response = await post_message(client, headers)
    assert response.status == 200, await response.text()
    assert len(await stored(client)) == 1


async def test_without_sec_fetch_site_the_origin_must_name_the_host_requested(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    host = f"{client.host}:{client.port}"
    own = await post_message(client, {"Origin": f"http://{host}"})
    assert own.status == 200
    # The scheme is not compared: behind a TLS-terminating proxy the page is https.
    proxied = await post_message(client, {"Origin": f"https://{host}"})
    assert proxied.status == 200
    other_host = await post_message(client, {"Origin": f"http://localhost:{client.port}"})
    assert other_host.status == 403


async def test_cors_for_any_origin_lets_no_page_write(make_client: MakeClient) -> None:
    """``*`` lets any page read the API with a credential it holds; it does not let any page
    act through a visitor's ambient one."""
    client = await make_client(cors_origins=("*",))
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://anywhere.example"}
    response = await post_message(client, cross)
    assert response.status == 403
    assert await response.json() == REFUSED
    read = await client.get("/chat/history?conversation_id=c", headers=cross)
    assert read.status == 200
    assert read.headers["Access-Control-Allow-Origin"] == "*"


async def test_every_write_is_checked_and_no_read(make_client: MakeClient) -> None:
    client = await make_client()
    created = await client.post("/chat/conversations", json={"title": "mine"})
    conversation = (await created.json())["id"]
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    path = f"/chat/conversations/{conversation}"
    writes = [
        await client.post("/chat/conversations", json={"title": "forged"}, headers=cross),
        await client.patch(path, json={"title": "forged"}, headers=cross),
        await client.delete(path, headers=cross),
    ]
    assert [w.status for w in writes] == [403, 403, 403]
    listing = await (await client.get("/chat/conversations")).json()
    assert [(c["id"], c["title"]) for c in listing] == [(conversation, "mine")]
    # Reads change nothing: a page elsewhere may send them (and cannot read the answer).
    reads = [
        await client.get("/chat/history", headers=cross),
        await client.get(path, headers=cross),
        await client.head("/chat/history", headers=cross),
    ]
    assert [r.status for r in reads] == [200, 200, 200]


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://example.com", "example.com", True),
        ("http://example.com", "example.com:80", True),
        ("https://example.com", "example.com:443", True),
        ("https://example.com", "example.com:80", False),
        ("http://example.com:8080", "example.com:8080", True),
        ("http://example.com:8080", "example.com", True),  # a proxy forwarding $host drops it
        ("http://example.com:8080", "example.com:8081", False),
        ("http://Example.COM", "example.com", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://example.com.evil", "example.com", False),
        ("http://example.com", "", False),
        ("http://example.com", None, False),
        ("null", "example.com", False),
        ("http://example.com:99999", "example.com", False),
        ("http://example.com", "example.com:x", False),
        ("http://[::1", "[::1]", False),
    ],
)
def test_same_host(origin: str, host: str | None, same: bool) -> None:
    assert same_host(origin, host) is same
