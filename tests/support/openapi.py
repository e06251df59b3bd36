"""Check real responses against the schemas of ``chat_service/openapi.yaml``."""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from chat_service.api.docs import load_openapi

SPEC_URI = "urn:chat-service:openapi"


@cache
def spec() -> dict[str, Any]:
    return load_openapi()


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a response-level ``$ref`` (JSON Schema does not know these)."""
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def response_schema_pointer(path: str, method: str, status: int) -> str:
    """The JSON pointer of the documented schema; fails if the response is undocumented."""
    responses = spec()["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} -> {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        target = response["$ref"].removeprefix("#/").split("/")
        assert "content" in _resolve(response)
        return _pointer(*target, "content", "application/json", "schema")
    return _pointer(
        "paths",
        path,
        method.lower(),
        "responses",
        str(status),
        "content",
        "application/json",
        "schema",
    )


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` breaks the documented schema."""
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, DRAFT202012.create_resource(spec())
    )
    schema = {"$ref": f"{SPEC_URI}#/{response_schema_pointer(path, method, status)}"}
    Draft202012Validator(schema, registry=registry).validate(body)
