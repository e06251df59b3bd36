"""``/chat/conversations``: the caller's conversations, to list, create, rename and delete.

Every handler reaches a conversation through the caller's namespace (identity.py's
``callers_conversation``): another principal's conversation and one that does not exist
are the same 404. Deleting ends the conversation's live streams on every replica (the
store tells them) and erases its text from the database.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web
from yarl import URL

from chat_service.api.errors import ApiError, error_response
from chat_service.api.identity import callers_conversation, owner
from chat_service.api.jsonio import json_response
from chat_service.api.validation import (
    encode_cursor,
    parse_conversation_id,
    parse_conversations_query,
    parse_new_conversation_body,
    parse_rename_body,
)
from chat_service.keys import REPLIES, STORE
from chat_service.store import StoreError
from chat_service.store.conversations import Conversation, ConversationCursor

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
NOT_FOUND = "Conversation not found."
FAILED = "Failed to {} the conversation."


def as_json(conversation: Conversation) -> dict[str, object]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "exchanges": conversation.exchanges,
    }


def found_or_404(conversation: Conversation | None) -> web.Response:
    """The conversation, or the 404 that another's and a missing one share."""
    if conversation is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(as_json(conversation))


@routes.get("/chat/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    query = parse_conversations_query(request.query)
    try:
        # One more than asked tells whether a next page exists.
        found = await request.app[STORE].conversations(
            owner(request), limit=query.limit + 1, after=query.after
        )
    except StoreError:
        log.exception("failed to list conversations")
        return error_response(500, "Failed to list conversations.")
    page = found[: query.limit]
    headers = {}
    if len(found) > query.limit:
        last = page[-1]
        cursor = encode_cursor(ConversationCursor(last.updated_at, last.id))
        next_page = URL("/chat/conversations").with_query(limit=query.limit, before=cursor)
        headers["Link"] = f'<{next_page}>; rel="next"'
    return json_response([as_json(conversation) for conversation in page], headers=headers)


@routes.post("/chat/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    # client_max_size (CHAT_MAX_BODY_BYTES) bounds the read: 413 above it (errors.py).
    title = parse_new_conversation_body(await request.read())
    store = request.app[STORE]
    try:
        created = None
        while created is None:  # 128 random bits: a second round is all but impossible
            conversation_id = secrets.token_hex(16)
            key = callers_conversation(request, conversation_id)
            created = await store.create_conversation(key, title)
    except StoreError:
        log.exception("failed to create a conversation")
        return error_response(500, FAILED.format("create"))
    location = f"/chat/conversations/{created.id}"
    return json_response(as_json(created), status=201, headers={"Location": location})


@routes.get("/chat/conversations/{conversation_id}")
async def get_conversation(request: web.Request) -> web.Response:
    key = _path_conversation(request)
    try:
        found = await request.app[STORE].conversation(key)
    except StoreError:
        log.exception("failed to read a conversation")
        return error_response(500, FAILED.format("read"))
    return found_or_404(found)


@routes.patch("/chat/conversations/{conversation_id}")
async def rename_conversation(request: web.Request) -> web.Response:
    key = _path_conversation(request)
    title = parse_rename_body(await request.read())
    try:
        renamed = await request.app[STORE].rename_conversation(key, title)
    except StoreError:
        log.exception("failed to rename a conversation")
        return error_response(500, FAILED.format("rename"))
    return found_or_404(renamed)


@routes.delete("/chat/conversations/{conversation_id}")
async def delete_conversation(request: web.Request) -> web.Response:
    key = _path_conversation(request)
    try:
        deleted = await request.app[REPLIES].delete(key)
    except StoreError:
        log.exception("failed to delete a conversation")
        return error_response(500, FAILED.format("delete"))
    if not deleted:
        raise ApiError(404, NOT_FOUND)
    return web.Response(status=204)


def _path_conversation(request: web.Request) -> str:
    return callers_conversation(
        request, parse_conversation_id(request.match_info["conversation_id"])
    )
