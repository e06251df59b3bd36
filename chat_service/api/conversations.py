"""``/chat/conversations``: the caller's conversations, to list, create, rename and delete.

Every handler reaches a conversation through the caller's namespace (identity.py's
``callers_conversation``): another principal's conversation and one that does not exist
are the same 404. Deleting ends the conversation's live streams on every replica and
erases its text from the database (the application layer and the store see to both).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from yarl import URL

from chat_service.api.body import read_body
from chat_service.api.errors import ApiError, when_the_store_fails
from chat_service.api.identity import callers_conversation, owner
from chat_service.api.jsonio import json_response
from chat_service.api.keys import CHAT, SETTINGS, service_app
from chat_service.api.models import refuse_models_not_offered
from chat_service.api.validation import (
    encode_cursor,
    parse_change_body,
    parse_conversation_id,
    parse_conversations_query,
    parse_new_conversation_body,
)
from chat_service.chat.contract import conversation_body
from chat_service.chat.domain import Conversation, ConversationCursor, ConversationRef
from chat_service.chat.export import FORMATS

routes = web.RouteTableDef()
NOT_FOUND = "Conversation not found."
FAILED = "Failed to {} the conversation."


def found_or_404(conversation: Conversation | None) -> web.Response:
    """The conversation, or the 404 that another's and a missing one share."""
    if conversation is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(conversation_body(conversation))


@routes.get("/conversations")
@when_the_store_fails("Failed to list conversations.")
async def list_conversations(request: web.Request) -> web.Response:
    query = parse_conversations_query(request.query)
    # One more than asked tells whether a next page exists.
    found = await service_app(request)[CHAT].conversations(
        owner(request), limit=query.limit + 1, after=query.after
    )
    page = found[: query.limit]
    headers = {}
    if len(found) > query.limit:
        last = page[-1]
        cursor = encode_cursor(ConversationCursor(last.updated_at, last.id))
        next_page = URL("/chat/conversations").with_query(limit=query.limit, before=cursor)
        headers["Link"] = f'<{next_page}>; rel="next"'
    return json_response([conversation_body(c) for c in page], headers=headers)


@routes.post("/conversations")
@when_the_store_fails(FAILED.format("create"))
async def create_conversation(request: web.Request) -> web.Response:
    # client_max_size (CHAT_MAX_BODY_BYTES) bounds the read: 413 above it (errors.py).
    app = service_app(request)
    title, settings = parse_new_conversation_body(
        await read_body(request), max_prompt_chars=app[SETTINGS].max_message_chars
    )
    chat = app[CHAT]
    await refuse_models_not_offered(chat, settings.model)
    created = await chat.start_conversation(owner(request), title, settings)
    location = f"/chat/conversations/{created.id}"
    return json_response(conversation_body(created), status=201, headers={"Location": location})


@routes.get("/conversations/{conversation_id}")
@when_the_store_fails(FAILED.format("read"))
async def get_conversation(request: web.Request) -> web.Response:
    found = await service_app(request)[CHAT].conversation(_path_conversation(request))
    return found_or_404(found)


@routes.patch("/conversations/{conversation_id}")
@when_the_store_fails(FAILED.format("change"))
async def change_conversation(request: web.Request) -> web.Response:
    """Rename it, or change its model or instructions (what its next message is answered
    with), or any of these at once."""
    conversation = _path_conversation(request)
    app = service_app(request)
    title, settings = parse_change_body(
        await read_body(request), max_prompt_chars=app[SETTINGS].max_message_chars
    )
    chat = app[CHAT]
    await refuse_models_not_offered(chat, settings.model)
    changed = None
    if title is not None:
        changed = await chat.rename_conversation(conversation, title)
        if changed is None:
            raise ApiError(404, NOT_FOUND)
    if settings.changes_anything:
        changed = await chat.configure_conversation(conversation, settings)
    return found_or_404(changed)


@routes.get("/conversations/{conversation_id}/export")
@when_the_store_fails(FAILED.format("export"))
async def export_conversation(request: web.Request) -> web.Response:
    """The conversation as a file to download: ``?format=markdown`` (the default) or ``json``."""
    conversation = _path_conversation(request)
    kind = request.query.get("format", "markdown")
    if kind not in FORMATS:
        raise ApiError(400, "Query parameter 'format' must be 'markdown' or 'json'.")
    exported = await service_app(request)[CHAT].export(conversation, kind)
    if exported is None:
        raise ApiError(404, NOT_FOUND)
    return web.Response(
        body=exported.body,
        headers={
            "Content-Type": exported.content_type,
            "Content-Disposition": content_disposition(exported.name),
        },
    )


@routes.delete("/conversations/{conversation_id}")
@when_the_store_fails(FAILED.format("delete"))
async def delete_conversation(request: web.Request) -> web.Response:
    if not await service_app(request)[CHAT].delete_conversation(_path_conversation(request)):
        raise ApiError(404, NOT_FOUND)
    return web.Response(status=204)


def _path_conversation(request: web.Request) -> ConversationRef:
    return callers_conversation(
        request, parse_conversation_id(request.match_info["conversation_id"])
    )


def content_disposition(name: str) -> str:
    """An attachment named ``name`` (RFC 6266): ASCII for old clients, UTF-8 for the rest."""
    ascii_name = "".join(char if char.isascii() and char.isprintable() else "_" for char in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
