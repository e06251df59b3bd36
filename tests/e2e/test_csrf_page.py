"""Cross-site request forgery in Chromium: a page elsewhere cannot write as the visitor.

The service runs in the anonymous mode, where the credential is ambient (as it is with NGINX
injecting a key or a sign-in proxy's cookie): whatever request reaches the API acts. A page on
another site then tries every write a browser lets it send without asking the service first
(a ``no-cors`` fetch and a ``text/plain`` form, neither of which is preflighted) and those
that need a preflight (PATCH, DELETE). None may change anything. A page on an origin
CHAT_CORS_ORIGINS lists makes the same calls and they succeed, and so do the same calls made
without a browser, as curl makes them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import OpenPage, StartModuleService
from tests.support.service import ServiceProcess

# Every write, as a page elsewhere would try it. The message and the new conversation go by
# "simple" requests (no preflight: the browser sends them and only hides the answer); the
# rename and the deletion need a preflight, so a forger can only send them with CORS.
FORGE = """async ([api, target]) => {
  const simple = (path, body) =>
    fetch(`${api}${path}`, { method: "POST", mode: "no-cors", body,
                             headers: { "Content-Type": "text/plain" } })
      .then((response) => response.type, (error) => String(error));
  const preflighted = (method, path, body) =>
    fetch(`${api}${path}`, { method, body, headers: { "Content-Type": "application/json" } })
      .then((response) => response.status, (error) => String(error));
  const form = () => new Promise((resolve) => {
    const frame = document.createElement("iframe");
    frame.name = "sink";
    frame.addEventListener("load", () => resolve("submitted"));
    document.body.append(frame);
    const form = document.createElement("form");
    Object.assign(form, { method: "POST", target: "sink", enctype: "text/plain",
                          action: `${api}/chat/message` });
    // text/plain sends name=value: a name that opens the JSON and a value that closes it.
    const field = document.createElement("input");
    Object.assign(field, { type: "hidden", name: '{"message":"forged by a form","x":"',
                           value: '"}' });
    form.append(field);
    document.body.append(form);
    form.submit();
  });
  return [
    await simple("/chat/message", JSON.stringify({ message: "forged by fetch" })),
    await simple("/chat/conversations", JSON.stringify({ title: "forged" })),
    await preflighted("PATCH", `/chat/conversations/${target}`, JSON.stringify({ title: "x" })),
    await preflighted("DELETE", `/chat/conversations/${target}`),
    await form(),
  ];
}"""

# The same writes by a page that may make them: ordinary CORS requests, statuses read.
WRITE = """async ([api, target]) => {
  const call = (method, path, body) =>
    fetch(`${api}${path}`, { method, body, headers: { "Content-Type": "application/json" } })
      .then((response) => response.status, (error) => String(error));
  return [
    await call("POST", "/chat/message", JSON.stringify({ message: "from a friend" })),
    await call("POST", "/chat/conversations", JSON.stringify({ title: "friendly" })),
    await call("PATCH", `/chat/conversations/${target}`, JSON.stringify({ title: "renamed" })),
    await call("DELETE", `/chat/conversations/${target}`),
  ];
}"""


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService, sites: tuple[str, str]) -> ServiceProcess:
    allowed, _ = sites
    return start_module_service(env={"CHAT_CORS_ORIGINS": allowed})


def state(service: ServiceProcess) -> tuple[list[Any], list[tuple[str, str]]]:
    """What a write would change: the default conversation's history, and every
    conversation's (id, title)."""
    _, _, history = service.request("GET", "/chat/history")
    _, _, listing = service.request("GET", "/chat/conversations")
    return history, [(c["id"], c["title"]) for c in listing]


def new_conversation(service: ServiceProcess, title: str) -> str:
    status, _, created = service.request("POST", "/chat/conversations", {"title": title})
    assert status == 201, created
    conversation_id: str = created["id"]
    return conversation_id


def test_a_page_elsewhere_cannot_write(
    open_page: OpenPage, sites: tuple[str, str], service: ServiceProcess
) -> None:
    _, other = sites
    target = new_conversation(service, "mine")
    before = state(service)
    watched = open_page()
    watched.page.goto(f"{other}/")
    results = watched.page.evaluate(FORGE, [service.base_url, target])
    # The simple requests were sent (their answers are opaque to the page); the preflighted
    # ones were stopped by the browser, since this origin is not allowed.
    assert results[:2] == ["opaque", "opaque"]
    assert results[2:4] == ["TypeError: Failed to fetch"] * 2
    assert results[4] == "submitted"
    assert state(service) == before, "nothing changed"
    # What this test provoked, and nothing else, is taken off the page's problems.
    watched.console[:] = [
        m
        for m in watched.console
        if "blocked by CORS policy" not in m.text
        and not m.text.startswith("Failed to load resource")
    ]


def test_an_allowed_page_and_curl_write(
    open_page: OpenPage, sites: tuple[str, str], service: ServiceProcess
) -> None:
    allowed, _ = sites
    target = new_conversation(service, "shared")
    watched = open_page()
    watched.page.goto(f"{allowed}/")
    assert watched.page.evaluate(WRITE, [service.base_url, target]) == [200, 201, 200, 204]
    history, conversations = state(service)
    assert history[-1]["user"] == "from a friend"
    assert "friendly" in [title for _, title in conversations]
    assert target not in [conversation_id for conversation_id, _ in conversations]
    # Without a browser (no Origin, no Sec-Fetch-Site), as curl -d sends it.
    status, _, body = service.request(
        "POST",
        "/chat/message",
        b'{"message": "from curl"}',
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body["status"]) == (200, "Success")
