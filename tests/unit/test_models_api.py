"""Choosing the model: ``GET /chat/models``, a model and instructions per conversation, a
model per message; on both stores, with an assistant that offers two models and tells what
each call asked for."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.api.keys import OPENAPI_DOCUMENT
from chat_service.app import create_app
from chat_service.assistant.base import Completion, ReplyChunk
from chat_service.chat.domain import Exchange
from chat_service.config import Settings

Client = TestClient[Any, Any]
NOT_OFFERED = "Model {!r} is not offered here; GET /chat/models lists those that are."


class Menu:
    """Offers "big" (its default) and "small"; answers with the model it was asked for, which
    the server reports under a dated name, and notes what each call asked."""

    provider = "test"
    model = "big"
    server_url: str | None = None

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None]] = []

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        self.calls.append((model, system_prompt))
        yield f"{model} says {message}"
        yield Completion(model=f"{model}-2025", finish_reason="stop", input_tokens=3)

    async def models(self) -> Sequence[str]:
        return ["small", "big"]

    async def close(self) -> None:
        return None


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


@pytest.fixture
def menu() -> Menu:
    return Menu()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, menu: Menu) -> Client:
    made: Client = await aiohttp_client(
        create_app(settings.replace(system_prompt="Deployment's."), assistant=menu)
    )
    return made


async def create(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/chat/conversations", json=body)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def post(client: Client, conversation: str, message: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/chat/message", json={"message": message, "conversation_id": conversation, **extra}
    )
    body: dict[str, Any] = await response.json()
    body["_status"] = response.status
    return body


async def stored_models(client: Client, conversation: str) -> list[str | None]:
    response = await client.get(f"/chat/history?conversation_id={conversation}")
    return [item["model"] for item in await response.json()]


async def test_the_models_offered_default_first(client: Client) -> None:
    response = await client.get("/chat/models")
    assert response.status == 200
    assert await response.json() == {"default": "big", "models": [{"id": "big"}, {"id": "small"}]}


async def test_the_dummy_offers_itself(aiohttp_client: Any, settings: Settings) -> None:
    client: Client = await aiohttp_client(create_app(settings))
    response = await client.get("/chat/models")
    assert await response.json() == {"default": "dummy-1", "models": [{"id": "dummy-1"}]}


async def test_a_conversation_is_answered_with_its_own_model_and_instructions(
    client: Client, menu: Menu
) -> None:
    created = await create(client, title="t", model="small", system_prompt="Be terse.")
    assert (created["model"], created["system_prompt"]) == ("small", "Be terse.")
    fetched = await client.get(f"/chat/conversations/{created['id']}")
    assert (await fetched.json())["model"] == "small", "stored with it"
    assert (await post(client, created["id"], "hi"))["response"] == "small says hi"
    assert menu.calls == [("small", "Be terse.")]
    assert await stored_models(client, created["id"]) == ["small-2025"], "the model that answered"


async def test_a_message_may_ask_for_another_model_for_itself(client: Client, menu: Menu) -> None:
    created = await create(client, model="small")
    assert (await post(client, created["id"], "one", model="big"))["response"] == "big says one"
    assert (await post(client, created["id"], "two"))["response"] == "small says two"
    assert [model for model, _ in menu.calls] == ["big", "small"], "the conversation's stays"
    assert await stored_models(client, created["id"]) == ["big-2025", "small-2025"]


async def test_a_conversation_without_settings_takes_the_deployments(
    client: Client, menu: Menu
) -> None:
    created = await create(client)
    assert (created["model"], created["system_prompt"]) == (None, None)
    await post(client, created["id"], "hi")
    await post(client, "never-created", "hi")
    # The assistant hears "use yours" (None) and applies its own default and prompt.
    assert menu.calls == [("big", None), ("big", None)]


async def test_changing_the_model_and_instructions_and_back(client: Client, menu: Menu) -> None:
    created = await create(client, title="kept")
    path = f"/chat/conversations/{created['id']}"
    changed = await (await client.patch(path, json={"model": "small", "system_prompt": ""})).json()
    assert (changed["title"], changed["model"], changed["system_prompt"]) == ("kept", "small", "")
    await post(client, created["id"], "a")
    renamed = await (await client.patch(path, json={"title": "new"})).json()
    assert (renamed["title"], renamed["model"], renamed["system_prompt"]) == ("new", "small", "")
    only_prompt = await (await client.patch(path, json={"system_prompt": "Rhyme."})).json()
    assert (only_prompt["model"], only_prompt["system_prompt"]) == ("small", "Rhyme.")
    back = await (await client.patch(path, json={"model": None, "system_prompt": None})).json()
    assert (back["title"], back["model"], back["system_prompt"]) == ("new", None, None)
    await post(client, created["id"], "b")
    # "" is no instructions at all; None, the deployment's.
    assert menu.calls == [("small", ""), ("big", None)]


async def test_a_model_not_offered_is_refused_before_anything_happens(
    client: Client, menu: Menu
) -> None:
    refused = await post(client, "c", "hi", model="gpt-5")
    assert (refused["_status"], refused["message"]) == (400, NOT_OFFERED.format("gpt-5"))
    response = await client.post("/chat/conversations", json={"model": "gpt-5"})
    assert (response.status, (await response.json())["message"]) == (
        400,
        NOT_OFFERED.format("gpt-5"),
    )
    assert await (await client.get("/chat/conversations")).json() == [], "nothing created"
    created = await create(client, model="small")
    path = f"/chat/conversations/{created['id']}"
    response = await client.patch(path, json={"model": "gpt-5", "title": "not this either"})
    assert response.status == 400
    after = await (await client.get(path)).json()
    assert (after["title"], after["model"]) == (None, "small"), "nothing changed"
    assert menu.calls == []
    assert await stored_models(client, "c") == []


async def test_changing_a_conversation_that_does_not_exist(client: Client) -> None:
    for body in ({"model": "small"}, {"title": "x", "model": "small"}):
        response = await client.patch("/chat/conversations/nope", json=body)
        assert response.status == 404


async def test_the_reply_cache_tells_models_and_instructions_apart(
    aiohttp_client: Any, settings: Settings, menu: Menu
) -> None:
    client: Client = await aiohttp_client(
        create_app(settings.replace(reply_cache_ttl_s=60), assistant=menu)
    )
    big, small = await create(client), await create(client, model="small")
    terse, again = await create(client, system_prompt="Be terse."), await create(client)
    for conversation in (big, small, terse, again):
        await post(client, conversation["id"], "same words")
    # The fourth is the first again (same model, instructions, context and words): from the
    # cache. The others each asked the model.
    assert menu.calls == [("big", None), ("small", None), ("big", "Be terse.")]


async def test_the_api_document_names_the_models_offered(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert document["components"]["schemas"]["ModelName"]["enum"] == ["big", "small"]
    again = await (await client.get("/openapi.json")).json()
    assert again == document
    loaded = client.app[OPENAPI_DOCUMENT] if client.app is not None else {}
    assert "enum" not in loaded["components"]["schemas"]["ModelName"], "the loaded one unchanged"
