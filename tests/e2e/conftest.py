"""Fixtures for the browser tests: one Chromium for the session, watched pages, services, NGINX.

The service and NGINX are real processes on free loopback ports, shared by the tests of a
module (starting them is most of the cost); every test gets fresh browser contexts, and
fails if its pages logged a console error, threw, opened a dialog or violated the CSP, or if
axe-core finds a WCAG 2.2 AA violation in one of our pages as the test left it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.accessibility import assert_accessible, axe_installed, shows_our_page
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ColorScheme,
    WatchedPage,
    open_watched_page,
)
from tests.e2e.nginx import FRONTEND_DIR, REPO, NginxServer
from tests.e2e.other_sites import sites as sites  # a fixture, for the CORS and CSRF pages
from tests.support.binaries import require_binary
from tests.support.service import ServiceProcess, free_port, service_env

OpenPage = Callable[..., WatchedPage]
StartModuleService = Callable[..., ServiceProcess]

OUTPUT_DIR = REPO / "test-results" / "e2e"
# What `npm ci` in frontend/ copies into vendor/ (make does it when Node.js is installed).
LIBRARY_PATHS = ("/vendor/marked.js", "/vendor/purify.js", "/vendor/highlight.js")


def markdown_libraries_installed() -> bool:
    return all((FRONTEND_DIR / path.lstrip("/")).is_file() for path in LIBRARY_PATHS)


# Generous for a loaded 2-core CI machine; passing runs never wait this long.
expect.set_options(timeout=10_000)


# Package scope: Chromium and Playwright's own event loop are gone before other folders' async
# tests run.
@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The service's store, for tests that run on both: nothing for SQLite (its file in the
    test's directory), else a fresh PostgreSQL database (skipped locally without PostgreSQL,
    failing in CI)."""
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("postgres_url")
    return {"CHAT_DATABASE_URL": url}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = require_binary("chromium", path=CHROMIUM)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """``open_page(viewport=..., color_scheme=...)``: a watched page in a fresh context.

    At the end of the test, every page opened must have stayed free of problems, and each that
    still shows one of our pages must pass axe-core's WCAG 2.2 AA rules as it stands.
    """
    opened: list[WatchedPage] = []

    def open_(
        *,
        viewport: dict[str, int] | None = None,
        color_scheme: ColorScheme = "light",
        reduced_motion: bool = False,
        touch: bool = False,
    ) -> WatchedPage:
        watched = open_watched_page(
            browser,
            viewport=viewport,
            color_scheme=color_scheme,
            reduced_motion=reduced_motion,
            touch=touch,
        )
        # Without Node.js the page has no libraries to load and shows replies as plain text:
        # their two 404s are the one console error that mode allows (the Markdown tests skip
        # then, and fail in CI).
        if not markdown_libraries_installed():
            watched.expect_failed_requests(*LIBRARY_PATHS)
        opened.append(watched)
        return watched

    yield open_
    # What happened during the test: not what later teardowns (a service stopped) set off.
    problems = [problem for watched in opened for problem in watched.problems()]
    try:
        inaccessible = [
            failure for watched in opened if (failure := _axe_failure(watched, request.node.name))
        ]
    finally:
        for watched in opened:
            watched.context.close()
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)
    assert not inaccessible, "\n\n".join(inaccessible)


def _axe_failure(watched: WatchedPage, test: str) -> str | None:
    """axe-core's findings on a page as the test left it, if it is one of ours and still open.

    Without axe-core (no ``npm ci`` in frontend/) there is no check here; test_accessibility.py
    skips then, with the reason, and fails in CI.
    """
    page = watched.page
    if not axe_installed() or page.is_closed() or not shows_our_page(page):
        return None
    try:
        assert_accessible(page, f"the page as {test} left it")
    except AssertionError as failure:
        return str(failure)
    return None


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where screenshots go (git-ignored)."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


def copy_page(folder: Path, *, libraries: bool) -> Path:
    """The page's files in ``folder``: to change config.json, or to serve it without the
    Markdown libraries (``libraries=False``: as set up on a machine without Node.js)."""
    for path in FRONTEND_DIR.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    if libraries and (FRONTEND_DIR / "vendor").is_dir():
        shutil.copytree(FRONTEND_DIR / "vendor", folder / "vendor")
    return folder


@pytest.fixture(scope="module")
def start_module_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartModuleService]:
    """Start a chat-service shared by a module's tests: ``start(env={...}, db_path=...,
    port=...)`` (``port``: one taken from ``free_port`` beforehand, for a service whose URL
    must be known first, as an OpenID Connect provider's redirect URI)."""
    started: list[ServiceProcess] = []

    def start(
        *, env: dict[str, str] | None = None, db_path: Path | None = None, port: int | None = None
    ) -> ServiceProcess:
        workdir = tmp_path_factory.mktemp("service")
        service = ServiceProcess(
            port=port or free_port(),
            db_path=db_path or workdir / "chat.db",
            env=service_env(env),
            workdir=workdir,
        )
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.kill()


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return require_binary("nginx", package="nginx-light")


@pytest.fixture(scope="module")
def nginx(
    nginx_binary: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """NGINX with the template in front of the module's own ``service`` fixture."""
    with NginxServer(
        binary=nginx_binary, workdir=tmp_path_factory.mktemp("nginx"), service_url=service.base_url
    ) as server:
        yield server
