"""``GET /openapi.json``: the API contract, from ``chat_service/openapi.yaml``."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from chat_service.api.jsonio import json_response
from chat_service.api.keys import OPENAPI_DOCUMENT

routes = web.RouteTableDef()


def load_openapi() -> dict[str, Any]:
    """The OpenAPI document shipped inside the package."""
    text = resources.files("chat_service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@routes.get("")  # mounted at /openapi.json (api/__init__.py)
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.config_dict[OPENAPI_DOCUMENT])
