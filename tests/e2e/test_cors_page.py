"""CORS in Chromium: a page on another origin calls the API with fetch() and an API key.

Two tiny static servers on other loopback ports (other_sites.py) stand for other sites: one
is listed in CHAT_CORS_ORIGINS, one is not. The browser, not a test client, decides what the
page's script may read, after its own preflight (Authorization and a JSON body make the
request non-simple).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.browser import WatchedPage
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.support.service import ServiceProcess

KEY = "cors-page-key-0123456789"
# The page's script: a message with the key, then the same without it.
CALL_THE_API = """async ([api, key]) => {
  const send = async (headers) => {
    try {
      const response = await fetch(`${api}/chat/message`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Request-ID": "cors-page-1", ...headers },
        body: JSON.stringify({ message: "hello from another site" }),
      });
      return {
        status: response.status,
        body: await response.json(),
        requestId: response.headers.get("X-Request-ID"),
      };
    } catch (error) {
      return { error: String(error) };
    }
  };
  return [await send({ Authorization: `Bearer ${key}` }), await send({})];
}"""


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService, sites: tuple[str, str]) -> ServiceProcess:
    allowed, _ = sites
    return start_module_service(env={"CHAT_CORS_ORIGINS": allowed, "CHAT_API_KEYS": KEY})


def call_from(watched: WatchedPage, origin: str, service: ServiceProcess) -> list[dict[str, Any]]:
    watched.page.goto(f"{origin}/")
    result: list[dict[str, Any]] = watched.page.evaluate(CALL_THE_API, [service.base_url, KEY])
    return result


def test_an_allowed_origin_reads_answers_and_errors(
    open_page: OpenPage, sites: tuple[str, str], service: ServiceProcess
) -> None:
    allowed, _ = sites
    watched = open_page()
    # The 401 is an HTTP error response, which Chromium reports on the console.
    watched.expect_failed_requests("/chat/message")
    with_key, without_key = call_from(watched, allowed, service)
    assert with_key["status"] == 200
    assert with_key["body"]["status"] == "Success"
    assert with_key["requestId"] == "cors-page-1", "an exposed header is readable"
    # The refusal is readable too: the script can tell a missing key from a network error.
    assert without_key["status"] == 401
    assert without_key["body"]["status"] == "error"
    _, _, history = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert history[-1]["user"] == "hello from another site"


def test_another_origin_is_refused_by_the_browser(
    open_page: OpenPage, sites: tuple[str, str], service: ServiceProcess
) -> None:
    _, other = sites
    watched = open_page()
    _, _, before = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {KEY}"}
    )
    results = call_from(watched, other, service)
    assert [r.get("error") for r in results] == ["TypeError: Failed to fetch"] * 2
    # Refused by the preflight: the message never reached the service.
    _, _, after = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert after == before
    blocked = [m for m in watched.console if "has been blocked by CORS policy" in m.text]
    assert len(blocked) == 2, [m.text for m in watched.console]
    assert all(f"from origin '{other}'" in m.text for m in blocked)
    # What this test provoked, and nothing else, is taken off the page's problems.
    watched.console[:] = [
        m
        for m in watched.console
        if m not in blocked and not m.text.startswith("Failed to load resource: net::ERR_FAILED")
    ]
