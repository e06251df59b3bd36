"""The OpenAPI document is valid OpenAPI 3.1 and documents the whole contract."""

from __future__ import annotations

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from chat_service.api.docs import load_openapi


def test_document_is_valid_openapi_3_1() -> None:
    document = load_openapi()
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()


def test_the_validator_would_catch_a_broken_document() -> None:
    document = load_openapi()
    document["paths"]["/chat/history"]["get"]["responses"]["200"] = {"content": {}}
    with pytest.raises(OpenAPIValidationError):
        OpenAPIV31SpecValidator(document).validate()


def test_every_route_and_error_is_documented() -> None:
    paths = load_openapi()["paths"]
    # A credential, when one is needed; a caller's limits; header fields over 32 KiB.
    refusals = {"401", "429", "431"}
    # And for writes, a page on another site, and a body that does not arrive in time.
    writes = refusals | {"403"}
    bodies = writes | {"408"}
    assert set(paths["/chat/history"]["get"]["responses"]) == {"200", "400", "500"} | refusals
    assert (
        set(paths["/chat/message"]["post"]["responses"])
        == {
            "200",
            "400",
            "409",
            "413",
            "500",
            "503",
            "504",
        }
        | bodies
    )
    conversation = "/chat/conversations/{conversation_id}"
    assert {
        (path, method): set(operation["responses"])
        for path in ("/chat/conversations", conversation)
        for method, operation in paths[path].items()
        if method != "parameters"
    } == {
        ("/chat/conversations", "get"): {"200", "400", "500"} | refusals,
        ("/chat/conversations", "post"): {"201", "400", "413", "500"} | bodies,
        (conversation, "get"): {"200", "400", "404", "500"} | refusals,
        (conversation, "patch"): {"200", "400", "404", "413", "500"} | bodies,
        (conversation, "delete"): {"204", "400", "404", "500"} | writes,
    }
    assert set(paths["/chat/message"]["post"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    parameters = {p.get("name") or p["$ref"] for p in paths["/chat/history"]["get"]["parameters"]}
    assert {"limit", "before"} <= parameters
