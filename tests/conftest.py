"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.service import ServiceProcess, free_port, service_env

StartService = Callable[..., ServiceProcess]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Start real chat-service processes; each is killed at the end of the test.

    ``start_service(env={...}, db_path=...)`` returns a ready :class:`ServiceProcess`.
    """
    started: list[ServiceProcess] = []

    def start(
        *, env: dict[str, str] | None = None, db_path: Path | None = None, port: int | None = None
    ) -> ServiceProcess:
        service = ServiceProcess(
            port=port or free_port(),
            db_path=db_path or tmp_path / "chat.db",
            env=service_env(env),
            workdir=tmp_path,
        )
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.kill()
