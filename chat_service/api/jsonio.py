"""JSON response bodies, encoded with orjson (the hot path's serialiser: see bench/README.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return raw_json_response(orjson.dumps(data), status=status, headers=headers)


def raw_json_response(
    body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response for a body that is JSON already."""
    response = web.Response(body=body, status=status, headers=headers)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
