"""The interactive API docs (/docs: Swagger UI 5 on /openapi.json) in Chromium.

From the service (CHAT_FRONTEND_DIR) and through NGINX with our template, under their own
Content-Security-Policy (Trusted Types still enforced): the operations are listed, their
Markdown descriptions render, and "Try it out" calls the API on the same origin. Any console
error or CSP violation fails a test (conftest.py). Without the npm libraries the page says
where the OpenAPI document is instead of staying blank.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import ColorScheme
from tests.e2e.conftest import OpenPage, StartModuleService, copy_page
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.binaries import in_ci
from tests.support.service import ServiceProcess

# What `npm ci` in frontend/ copies into vendor/ for the docs (see copy-vendor.mjs).
SWAGGER_UI_PATHS = ("/vendor/swagger-ui-bundle.js", "/vendor/swagger-ui.css")
DOCS_POLICY_TRUSTED_TYPES = "trusted-types default dompurify docs-dompurify"
GREETING = "Hello from the docs test"


def require_swagger_ui() -> None:
    if all((FRONTEND_DIR / path.lstrip("/")).is_file() for path in SWAGGER_UI_PATHS):
        return
    reason = "frontend/vendor/ has no Swagger UI: run `make` with Node.js (npm ci in frontend/)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    service = start_module_service(
        env={"CHAT_FRONTEND_DIR": str(FRONTEND_DIR), "CHAT_RATE_LIMIT_RPS": "0"}
    )
    status, _, _ = service.request("POST", "/chat/message", {"message": GREETING})
    assert status == 200
    return service


@pytest.fixture(params=["service", "nginx"])
def base_url(request: pytest.FixtureRequest, service: ServiceProcess) -> str:
    if request.param == "nginx":
        return str(request.getfixturevalue("nginx").base_url)
    return service.base_url


def open_docs(page: Page, base_url: str) -> None:
    response = page.goto(f"{base_url}/docs")
    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert policy.endswith(f"require-trusted-types-for 'script'; {DOCS_POLICY_TRUSTED_TYPES}")
    expect(page).to_have_title("chat-service API")


def test_the_docs_list_the_operations_and_try_one_out(open_page: OpenPage, base_url: str) -> None:
    require_swagger_ui()
    page = open_page().page
    open_docs(page, base_url)

    history = page.locator("#operations-chat-getChatHistory")
    expect(history.locator(".opblock-summary-method")).to_have_text("GET")
    expect(history.locator(".opblock-summary-path")).to_have_text("/chat/history")
    message = page.locator("#operations-chat-postChatMessage")
    expect(message.locator(".opblock-summary-method")).to_have_text("POST")
    expect(message.locator(".opblock-summary-path")).to_have_text("/chat/message")
    # The description's Markdown became elements, through the page's default policy.
    expect(page.locator("main code", has_text="GET /chat/history").first).to_be_visible()

    history.locator(".opblock-summary-control").click()
    history.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/chat/history") as answered:
        history.get_by_role("button", name="Execute").click()
    assert answered.value.status == 200
    assert urlsplit(answered.value.url).netloc == urlsplit(base_url).netloc, "same origin"
    answer = history.locator(".live-responses-table tr.response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    expect(answer.locator(".response-col_description")).to_contain_text(GREETING)


_BACKGROUNDS = """() => ({
  page: getComputedStyle(document.body).backgroundColor,
  docs: getComputedStyle(document.querySelector('.swagger-ui')).backgroundColor,
  bar: getComputedStyle(document.querySelector('.docs-bar__title')).color,
})"""
DARK = {"page": "rgb(28, 32, 34)", "docs": "rgb(28, 32, 34)", "bar": "rgb(228, 230, 230)"}


def test_the_docs_follow_the_dark_theme_and_its_changes(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    """Dark when the system prefers dark, as the chat page: the bar and Swagger UI (its own
    dark theme, html.dark-mode) alike; light again when the system changes back. Contrast in
    both is axe-core's (test_accessibility.py)."""
    require_swagger_ui()
    page = open_page(color_scheme="dark").page
    open_docs(page, service.base_url)
    expect(page.locator("#operations-chat-postChatMessage")).to_be_visible()
    expect(page.locator("html")).to_have_class("dark-mode")
    assert page.evaluate(_BACKGROUNDS) == DARK
    page.emulate_media(color_scheme="light")
    expect(page.locator("html")).not_to_have_class("dark-mode")
    light = page.evaluate(_BACKGROUNDS)
    assert light["page"] == "rgb(255, 255, 255)", light
    assert light["bar"] == "rgb(26, 31, 39)", light


def test_an_open_operation_is_in_the_address_and_the_address_opens_it(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    """Deep links: the address names the operation opened, and opens it again. The path in
    the operation's summary is text, not a link inside the button that opens it (docs.js)."""
    require_swagger_ui()
    page = open_page().page
    open_docs(page, service.base_url)
    operation = page.locator("#operations-conversations-listConversations")
    summary = operation.locator(".opblock-summary-control")
    summary.click()
    expect(page).to_have_url(f"{service.base_url}/docs#/conversations/listConversations")
    expect(summary.locator(".opblock-summary-path")).to_have_text("/chat/conversations")
    expect(summary.locator("a[href]")).to_have_count(0)

    page.reload()
    expect(summary).to_have_attribute("aria-expanded", "true")
    expect(operation.get_by_role("button", name="Try it out")).to_be_visible()


def test_the_page_links_the_docs_and_back(open_page: OpenPage, service: ServiceProcess) -> None:
    require_swagger_ui()
    page = open_page().page
    page.goto(service.base_url)
    footer = page.get_by_role("contentinfo")
    expect(footer.get_by_role("link", name="OpenAPI document")).to_have_attribute(
        "href", "openapi.json"
    )
    footer.get_by_role("link", name="API docs").click()
    expect(page).to_have_url(f"{service.base_url}/docs")
    expect(page.locator("#operations-chat-getChatHistory")).to_be_visible()
    page.get_by_role("link", name="Back to the chat").click()
    expect(page).to_have_url(f"{service.base_url}/")


@pytest.fixture(scope="module")
def plain_service(
    start_module_service: StartModuleService, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    """The page's files without vendor/: as set up on a machine without Node.js."""
    folder: Path = copy_page(tmp_path_factory.mktemp("frontend-plain"), libraries=False)
    return start_module_service(env={"CHAT_FRONTEND_DIR": str(folder)})


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_without_swagger_ui_the_docs_point_at_the_document(
    open_page: OpenPage, plain_service: ServiceProcess, scheme: ColorScheme
) -> None:
    watched = open_page(color_scheme=scheme)
    watched.expect_failed_requests(*SWAGGER_UI_PATHS)
    page = watched.page
    open_docs(page, plain_service.base_url)
    status = page.get_by_role("status")
    expect(status).to_contain_text("The interactive API docs are not installed here")
    expect(status).to_contain_text("npm ci")
    expect(status.get_by_role("link", name="/openapi.json")).to_have_attribute(
        "href", "openapi.json"
    )
    # The page's own colours follow the scheme without Swagger UI's stylesheet.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
