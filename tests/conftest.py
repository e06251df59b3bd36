"""Fixtures shared by every test folder."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_service.config import Settings
from tests.support.binaries import in_ci
from tests.support.model import ModelServer
from tests.support.oidc_provider import OidcClient, OidcProvider
from tests.support.postgres import PostgresNotFound, PostgresServer, database_name
from tests.support.service import ServiceProcess, free_port, service_env

StartService = Callable[..., ServiceProcess]
StartOidcProvider = Callable[..., OidcProvider]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Start real chat-service processes; each is killed at the end of the test.

    ``start_service(env={...}, db_path=...)`` returns a ready :class:`ServiceProcess`.
    """
    started: list[ServiceProcess] = []

    def start(
        *,
        env: dict[str, str] | None = None,
        db_path: Path | None = None,
        port: int | None = None,
        ready_path: str = "/readyz",
        user: str | None = None,
        file_limit: tuple[int, int] | None = None,
    ) -> ServiceProcess:
        service = ServiceProcess(
            port=port or free_port(),
            db_path=db_path or tmp_path / "chat.db",
            env=service_env(env),
            workdir=tmp_path,
        )
        started.append(service)
        return service.start(ready_path=ready_path, user=user, file_limit=file_limit)

    yield start
    for service in started:
        service.kill()
    for service in started:
        assert_json_lines(service.stdout(), killed=True)


REQUIRED_LOG_KEYS = {"timestamp", "level", "logger", "message", "service"}


def assert_json_lines(stdout: str, *, killed: bool = False) -> None:
    """Every line a service printed on stdout is one JSON object with the common fields.

    Lines end at "\n" only, as JSON Lines says: a logged path may hold U+2028 or U+0085,
    which ``str.splitlines`` would take for line ends too. A service ``killed`` (SIGKILL)
    may have been stopped in the middle of a write: the kernel cuts a write to a file at a
    page boundary when the process is killed, so what follows its last line end may be a
    line cut short (CI saw one, an access-log line written as the test ended)."""
    lines = stdout.split("\n")
    last = lines.pop()  # what follows the last line end
    assert killed or last == "", f"stdout ends in an unfinished line: {last!r}"
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"stdout line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        missing = REQUIRED_LOG_KEYS - record.keys()
        assert not missing, f"stdout line {number} lacks {missing}: {line}"


@pytest.fixture(scope="module")
def start_oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartOidcProvider]:
    """Start real OpenID Connect providers (oidc-provider, tests/support/oidc_provider.py),
    shared by a module's tests and stopped at its end: ``start_oidc_provider(clients,
    audience=..., access_token_ttl=..., refresh_token_ttl=..., accounts=...)`` returns one
    that listens; its ``issuer`` is CHAT_OIDC_ISSUER. Skips without Node.js or oidc-provider
    (``npm ci`` in frontend/), and fails so in CI."""
    started: list[OidcProvider] = []

    def start(clients: list[OidcClient], **options: Any) -> OidcProvider:
        provider = OidcProvider(
            clients, workdir=tmp_path_factory.mktemp("oidc-provider"), **options
        )
        started.append(provider)
        return provider.start()

    yield start
    for provider in started:
        provider.stop()


@pytest.fixture(scope="session")
def model_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    server = ModelServer(tmp_path_factory.mktemp("model-server")).start()
    yield server
    server.kill()


@pytest.fixture
def model_server(model_server_process: ModelServer) -> ModelServer:
    """The OpenAI-compatible model server, shared by the session, reset for each test."""
    model_server_process.reset()
    return model_server_process


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server shared by the session: initdb and start take about a second, a
    database tens of milliseconds, so tests share the server and each gets its own database
    (``postgres_url``). Skips locally without PostgreSQL; fails in CI, which installs it."""
    try:
        server = PostgresServer()
    except PostgresNotFound as missing:
        if in_ci():
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(str(missing))
    try:
        server.start()
        yield server
    finally:
        server.close()


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, empty database for this test alone, dropped afterwards.

    A test may stop or kill the shared server (restart and crash tests): the server is started
    again before the database is dropped, so the next test finds it running.
    """
    postgres_server.start()
    name = database_name(request.node.name, next(_database_numbers))
    url = postgres_server.create_database(name)
    yield url
    postgres_server.start()
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each store in turn: SQLite in a temporary file, then a fresh PostgreSQL
    database. A test module that must hold for both overrides ``settings`` with this."""
    if request.param == "sqlite":
        return Settings(db_path=tmp_path / "chat.db")
    url: str = request.getfixturevalue("postgres_url")
    return Settings(db_path=tmp_path / "unused.db", database_url=url)
