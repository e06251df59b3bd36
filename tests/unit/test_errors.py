"""The error middleware's registry of store failures and its refusals, on their own: a
handler tells once what its 500 says, and every refusal names its reason for the access
log. (The contract's own 500s, with a broken store: tests/unit/test_api.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from chat_service.api.errors import REQUEST_ERROR, json_errors, refuse, when_the_store_fails
from chat_service.chat.domain import StoreError


def test_a_refusal_tells_the_access_log_why() -> None:
    request = make_mocked_request("GET", "/x")
    response = refuse(request, 403, "No.", {"Retry-After": "3"})
    assert request[REQUEST_ERROR] == "No."
    assert response.status == 403
    assert json.loads(response.body) == {"status": "error", "message": "No."}  # type: ignore[arg-type]
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ({}, {"status": "error", "message": "Failed to do it."}),
        ({"status_key": True}, {"status": "error", "message": "Failed to do it."}),
        ({"status_key": False}, {"message": "Failed to do it."}),
    ],
)
async def test_a_handler_registers_what_its_store_failure_says(
    aiohttp_client: Any, options: dict[str, bool], body: dict[str, str]
) -> None:
    @when_the_store_fails("Failed to do it.", **options)
    async def failing(request: web.Request) -> web.Response:
        raise StoreError("disk on fire")

    async def unregistered(request: web.Request) -> web.Response:
        raise StoreError("disk on fire")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/registered", failing)
    app.router.add_get("/unregistered", unregistered)
    client = await aiohttp_client(app)
    registered = await client.get("/registered")
    assert registered.status == 500
    assert await registered.json() == body
    other = await client.get("/unregistered")
    assert other.status == 500
    assert await other.json() == {"status": "error", "message": "Internal server error."}
