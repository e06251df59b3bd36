"""In-process fixtures: the app on aiohttp's test server, with a fresh database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.app import create_app
from chat_service.config import Settings

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "chat.db")


@pytest.fixture
def make_client(aiohttp_client: Any, settings: Settings) -> MakeClient:
    """``await make_client(**setting_changes)``: a client of a freshly built app."""

    async def make(**changes: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings.replace(**changes)))
        return client

    return make
