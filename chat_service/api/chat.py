"""The chat contract: ``GET /chat/history`` and ``POST /chat/message``.

Handlers stay thin: parse and validate, call the store and the assistant, shape the
contract's JSON. Failures of the store or the assistant are logged once here, where
they become the contract's 500 bodies.
"""

from __future__ import annotations

import logging

from aiohttp import web

from chat_service.api.errors import ApiError, error_response
from chat_service.api.jsonio import json_response, raw_json_response
from chat_service.api.pages import PageRenderer
from chat_service.api.validation import parse_history_query, parse_message_body
from chat_service.assistant import AssistantError
from chat_service.keys import ASSISTANT, SETTINGS, STORE
from chat_service.store import StoreError
from chat_service.telemetry.logs import EVENT_FIELDS, REQUEST_TRACE_IDS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
# Beside the routes that use it rather than in keys.py, which would then import this
# package while the package imports keys.py.
PAGE_RENDERER = web.AppKey("page_renderer", PageRenderer)


def setup_chat(app: web.Application) -> None:
    """The chat routes, and the state they keep per app."""
    app[PAGE_RENDERER] = PageRenderer()
    app.router.add_routes(routes)


@routes.get("/chat/history")
async def get_history(request: web.Request) -> web.Response:
    query = parse_history_query(request.query)
    store = request.app[STORE]
    try:
        if query.limit is None:
            # The whole history: serialised by the store in one piece (it can be long).
            document = await store.history_json(query.conversation_id, before=query.before)
            return raw_json_response(document)
        page = await store.history(query.conversation_id, limit=query.limit, before=query.before)
    except StoreError:
        log.exception("failed to fetch chat history")
        return json_response({"message": "Failed to fetch chat history."}, status=500)
    rendered = request.app[PAGE_RENDERER].render(query, page)
    headers = {"Link": rendered.link} if rendered.link is not None else None
    return raw_json_response(rendered.body, headers=headers)


@routes.post("/chat/message")
async def post_message(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, f"Request body is larger than {settings.max_body_bytes} bytes.")
    new = parse_message_body(await request.read(), max_chars=settings.max_message_chars)
    store = request.app[STORE]
    try:
        history = await store.recent(new.conversation_id, settings.context_turns)
    except StoreError:
        log.exception("failed to load the conversation")
        return error_response(500, "Failed to load the conversation.")
    try:
        reply = await request.app[ASSISTANT].reply(
            new.text, history, conversation_id=new.conversation_id
        )
    except AssistantError:
        log.exception("the assistant failed to reply")
        return error_response(500, "The assistant failed to reply.")
    ids = request.get(REQUEST_TRACE_IDS)
    try:
        exchange = await store.append(
            new.conversation_id, new.text, reply.text, trace_id=ids and ids.trace_id
        )
    except StoreError:
        log.exception("failed to store the exchange")
        return error_response(500, "Failed to store the message.")
    # One log line per request: the access log carries these (see telemetry/logs.py).
    fields: dict[str, object] = {
        "conversation_id": exchange.conversation_id,
        "exchange_id": exchange.id,
        "turn": exchange.turn,
        "message_chars": len(new.text),
        "reply_chars": len(reply.text),
    }
    if settings.log_content:
        fields |= {"user_message": new.text, "ai_response": reply.text}
    request[EVENT_FIELDS] = fields
    return json_response({"status": "Success", "response": reply.text})
