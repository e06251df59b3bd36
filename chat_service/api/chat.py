"""The chat contract: ``GET /chat/history`` and ``POST /chat/message``.

Handlers stay thin: parse and validate, call the store or the reply service, shape the
contract's JSON (or its event stream: see streaming.py). Failures of the store or the
assistant are logged once here, where they become the contract's error bodies.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

from chat_service.api.access_log import REQUEST_TRACE_IDS
from chat_service.api.errors import ApiError, error_response
from chat_service.api.history_cache import HistoryCache
from chat_service.api.identity import callers_conversation
from chat_service.api.jsonio import json_response, raw_json_response
from chat_service.api.replies import (
    ASSISTANT_FAILED,
    STORE_FAILED,
    log_model_failure,
    model_busy_response,
    record_exchange,
)
from chat_service.api.streaming import stream_reply, wants_event_stream
from chat_service.api.validation import parse_history_query, parse_message_body
from chat_service.assistant import AssistantError
from chat_service.keys import REPLIES, SETTINGS
from chat_service.replies import ModelBusy, Turn
from chat_service.store import StoreError

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
# Beside the routes that use it rather than in keys.py, which would then import this
# package while the package imports keys.py. Set with the store (app.py's store_ctx).
HISTORY_CACHE = web.AppKey("history_cache", HistoryCache)


def setup_chat(app: web.Application) -> None:
    app.router.add_routes(routes)


@routes.get("/chat/history")
async def get_history(request: web.Request) -> web.Response:
    query = parse_history_query(request.query)
    try:
        key = callers_conversation(request, query.conversation_id)
        rendered = await request.app[HISTORY_CACHE].page(key, query)
    except StoreError:
        log.exception("failed to fetch chat history")
        return json_response({"message": "Failed to fetch chat history."}, status=500)
    headers = {"Link": rendered.link} if rendered.link is not None else None
    return raw_json_response(rendered.body, headers=headers)


@routes.post("/chat/message")
async def post_message(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, f"Request body is larger than {settings.max_body_bytes} bytes.")
    new = parse_message_body(await request.read(), max_chars=settings.max_message_chars)
    ids = request.get(REQUEST_TRACE_IDS)
    trace_id = ids.trace_id if ids is not None else None
    try:
        key = callers_conversation(request, new.conversation_id)
        async with request.app[REPLIES].turn(key, new.text) as turn:
            if wants_event_stream(request):
                return await stream_reply(request, turn, trace_id)
            return await plain_reply(request, turn, trace_id)
    except StoreError:
        log.exception("failed to load the conversation")
        return error_response(500, "Failed to load the conversation.")


async def plain_reply(request: web.Request, turn: Turn, trace_id: str | None) -> web.Response:
    """The contract's JSON answer: the whole reply, once the exchange is stored."""
    try:
        async with contextlib.aclosing(turn.reply()) as pieces:
            reply = "".join([piece async for piece in pieces])
    except ModelBusy as busy:
        return model_busy_response(busy)
    except AssistantError as exc:
        log_model_failure(exc, turn)
        return error_response(500, ASSISTANT_FAILED)
    try:
        exchange = await turn.save(reply, trace_id=trace_id)
    except StoreError:
        log.exception("failed to store the exchange")
        return error_response(500, STORE_FAILED)
    record_exchange(request, turn, exchange, reply)
    return json_response({"status": "Success", "response": reply})
