"""``GET /openapi.json``: the API contract, from ``chat_service/openapi.yaml``, with the
models this deployment offers right now as the ``enum`` of a model's name (what a client,
Swagger UI or a fuzzer may send; GET /chat/models says the same)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from chat_service.api.jsonio import json_response
from chat_service.api.keys import CHAT, OPENAPI_DOCUMENT, service_app

routes = web.RouteTableDef()


def load_openapi() -> dict[str, Any]:
    """The OpenAPI document shipped inside the package."""
    text = resources.files("chat_service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@routes.get("")  # mounted at /openapi.json (api/__init__.py)
async def openapi_json(request: web.Request) -> web.Response:
    app = service_app(request)
    document = app[OPENAPI_DOCUMENT]
    chat = app.get(CHAT)
    if chat is not None:
        _, offered = await chat.models()
        document = with_models(document, offered)
    return json_response(document)


def with_models(document: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """``document`` with ``models`` as the enum of ModelName; the parts on the way to it are
    copied, the rest shared with the loaded document, which stays as it was."""
    components = document["components"]
    schemas = components["schemas"]
    model_name = {**schemas["ModelName"], "enum": list(models)}
    return {
        **document,
        "components": {**components, "schemas": {**schemas, "ModelName": model_name}},
    }
