"""Exporting a conversation: ``GET /chat/conversations/{id}/export``, Markdown and JSON, on
both stores; and the files' content and names (chat/export.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient

from chat_service.app import create_app
from chat_service.chat.domain import Conversation, Exchange, ReplyOrigin
from chat_service.chat.export import export_json, export_markdown, file_name
from chat_service.config import Settings
from tests.support.refs import ref

Client = TestClient[Any, Any]
NOT_FOUND = {"status": "error", "message": "Conversation not found."}


@pytest.fixture
async def client(aiohttp_client: Any, backend_settings: Settings) -> Client:
    made: Client = await aiohttp_client(create_app(backend_settings))
    return made


async def conversation_with_two_exchanges(client: Client, title: str) -> str:
    created = await client.post(
        "/chat/conversations", json={"title": title, "system_prompt": "Be kind."}
    )
    conversation: str = (await created.json())["id"]
    for message in ("hello", "what is **bold**?"):
        response = await client.post(
            "/chat/message", json={"message": message, "conversation_id": conversation}
        )
        assert response.status == 200
    return conversation


async def test_json_is_the_conversation_and_every_exchange(client: Client) -> None:
    conversation = await conversation_with_two_exchanges(client, "Trip to Köln")
    response = await client.get(f"/chat/conversations/{conversation}/export?format=json")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Trip-to-K_ln.json\"; filename*=UTF-8''Trip-to-K%C3%B6ln.json"
    )
    exported = json.loads(await response.read())
    assert (exported["id"], exported["title"], exported["system_prompt"]) == (
        conversation,
        "Trip to Köln",
        "Be kind.",
    )
    assert exported["exchanges"] == 2
    assert [(e["turn"], e["user"], e["model"]) for e in exported["history"]] == [
        (1, "hello", "dummy-1"),
        (2, "what is **bold**?", "dummy-1"),
    ]
    assert exported["history"][1]["AI"] == (
        'You said: "what is **bold**?". This is turn 2 of our conversation.'
    )
    assert exported["history"][0]["usage"] == {"input_tokens": 1, "output_tokens": 12}
    history = await (await client.get(f"/chat/history?conversation_id={conversation}")).json()
    assert exported["history"] == history, "the same items as the history"


async def test_markdown_reads_as_the_chat_did(client: Client) -> None:
    conversation = await conversation_with_two_exchanges(client, "Notes")
    response = await client.get(f"/chat/conversations/{conversation}/export")
    assert response.status == 200, "Markdown unless asked otherwise"
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert unquote(response.headers["Content-Disposition"].split("''")[1]) == "Notes.md"
    text = (await response.read()).decode()
    lines = text.splitlines()
    assert lines[0] == "# Notes"
    assert lines[2].endswith(" · 2 exchanges")
    assert lines[4:7] == ["## Instructions", "", "Be kind."]
    headings = [line for line in lines if line.startswith("## ")]
    assert [h.split(" · ")[0] for h in headings] == [
        "## Instructions",
        "## You",
        "## dummy-1",
        "## You",
        "## dummy-1",
    ]
    assert headings[2] == "## dummy-1 · 1 in, 12 out"
    assert "what is **bold**?" in lines, "the message as it was written"


async def test_what_cannot_be_exported(client: Client) -> None:
    conversation = await conversation_with_two_exchanges(client, "x")
    bad = await client.get(f"/chat/conversations/{conversation}/export?format=pdf")
    assert (bad.status, (await bad.json())["message"]) == (
        400,
        "Query parameter 'format' must be 'markdown' or 'json'.",
    )
    missing = await client.get("/chat/conversations/nope/export?format=json")
    assert (missing.status, await missing.json()) == (404, NOT_FOUND)


def conversation(title: str | None, **settings: Any) -> Conversation:
    return Conversation("c0ffee", title, "2026-12-05T10:00:00.000Z", "t", 1, **settings)


def test_file_names_keep_what_any_file_system_takes() -> None:
    assert file_name(conversation("Plan: a/b\\c?*"), "md") == "Plan-a-b-c.md"
    assert file_name(conversation("  ...  "), "json") == "c0ffee.json", "nothing left: the id"
    assert file_name(conversation(None), "md") == "c0ffee.md"
    assert file_name(conversation("日本語のチャット"), "md") == "日本語のチャット.md"
    assert file_name(conversation("x" * 100), "md") == "x" * 60 + ".md"


def test_markdown_of_a_bare_conversation_and_of_unknown_origins() -> None:
    exchanges = [
        Exchange(1, ref("c"), 1, "q", "a", "2026-12-05T10:00:01.000Z"),
        Exchange(2, ref("c"), 2, "q2", "a2", "t2", origin=ReplyOrigin("m", None, 5)),
    ]
    text = export_markdown(conversation(None, model="m"), exchanges).decode()
    assert text.splitlines()[:3] == [
        "# Untitled chat",
        "",
        "Started 2026-12-05T10:00:00.000Z · 2 exchanges · model m",
    ]
    assert "## Instructions" not in text
    assert "## Assistant\n\na\n" in text
    assert "## m · ? in, 5 out\n\na2\n" in text


def test_file_names_lose_separators_at_their_ends_only() -> None:
    assert file_name(conversation("-.plan"), "md") == "plan.md"
    assert file_name(conversation("Xmas list X"), "md") == "Xmas-list-X.md"
    assert file_name(conversation("X" * 70), "md") == "X" * 60 + ".md"
    assert file_name(conversation("x" * 59 + " y"), "md") == "x" * 59 + ".md", "no dash at the cut"


def test_the_whole_markdown_of_a_short_chat() -> None:
    exchanges = [
        Exchange(
            1,
            ref("c"),
            1,
            "Hi",
            "Hello!",
            "2026-12-05T10:00:01.000Z",
            origin=ReplyOrigin("m", 3, 2),
        )
    ]
    text = export_markdown(conversation("Hi", system_prompt="Be kind."), exchanges).decode()
    assert text == (
        "# Hi\n\nStarted 2026-12-05T10:00:00.000Z · 1 exchange\n\n"
        "## Instructions\n\nBe kind.\n\n"
        "## You · 2026-12-05T10:00:01.000Z\n\nHi\n\n"
        "## m · 3 in, 2 out\n\nHello!\n"
    )


def test_json_is_indented_for_people_to_read_too() -> None:
    body = export_json(conversation("t"), []).decode()
    assert body.startswith('{\n  "id": "c0ffee",\n  "title": "t",')
    assert body.endswith('\n  "history": []\n}')
