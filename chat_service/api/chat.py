"""The chat contract: ``GET /chat/history`` and ``POST /chat/message``.

Handlers stay thin: parse and validate, call the application layer (``Chat``), shape the
contract's JSON (or its event stream: see streaming.py). A failing store becomes the
contract's 500 in errors.py's ``store_failures``; a failing assistant is answered here.
"""

from __future__ import annotations

import contextlib

from aiohttp import web
from yarl import URL

from chat_service.api.access_log import REQUEST_TRACE_IDS
from chat_service.api.body import read_body
from chat_service.api.cursors import cursor
from chat_service.api.errors import ApiError, error_response, when_the_store_fails
from chat_service.api.identity import caller, callers_conversation
from chat_service.api.jsonio import json_response, raw_json_response
from chat_service.api.keys import CHAT, SETTINGS, STREAM_LIMITS, service_app
from chat_service.api.models import refuse_models_not_offered
from chat_service.api.replies import (
    ReplyDeadline,
    log_model_failure,
    model_failure,
    no_slot_response,
    record_exchange,
)
from chat_service.api.streaming import stream_reply, wants_event_stream
from chat_service.api.validation import HistoryQuery, parse_history_query, parse_message_body
from chat_service.assistant import AssistantError
from chat_service.chat.contract import reply_body
from chat_service.chat.domain import DEFAULT_CONVERSATION, TurnNotFound
from chat_service.chat.model_slots import ModelBusy, TooManyReplies
from chat_service.chat.replies import Turn

routes = web.RouteTableDef()


@routes.get("/history")
@when_the_store_fails("Failed to fetch chat history.", status_key=False)
async def get_history(request: web.Request) -> web.Response:
    query = parse_history_query(request.query)
    conversation = callers_conversation(request, query.conversation_id)
    page = await service_app(request)[CHAT].history(
        conversation, limit=query.limit, before_turn=query.before_turn
    )
    link = next_page_link(query, page.next_before_turn)
    return raw_json_response(page.body, headers={"Link": link} if link is not None else None)


def next_page_link(query: HistoryQuery, before_turn: int | None) -> str | None:
    """``Link: <...>; rel="next"`` to the next older page, when there is one."""
    if before_turn is None or query.limit is None:
        return None
    params: dict[str, str | int] = {"limit": query.limit, "before": cursor(before_turn)}
    if query.conversation_id != DEFAULT_CONVERSATION:
        params["conversation_id"] = query.conversation_id
    return f'<{URL("/chat/history").with_query(params)}>; rel="next"'


@routes.post("/message")
@when_the_store_fails("Failed to load the conversation.")
async def post_message(request: web.Request) -> web.StreamResponse:
    service = service_app(request)
    settings = service[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, f"Request body is larger than {settings.max_body_bytes} bytes.")
    new = parse_message_body(await read_body(request), max_chars=settings.max_message_chars)
    ids = request.get(REQUEST_TRACE_IDS)
    trace_id = ids.trace_id if ids is not None else None
    conversation = callers_conversation(request, new.conversation_id)
    streamed = wants_event_stream(request)
    # A stream counts against the caller's open streams for as long as it lasts.
    holding = (
        request.config_dict[STREAM_LIMITS].hold(request) if streamed else contextlib.nullcontext()
    )
    with holding:
        chat = service[CHAT]
        await refuse_models_not_offered(chat, new.model)
        try:
            async with chat.turn(
                conversation,
                new.text,
                caller=caller(request),
                model=new.model,
                replaces_turn=new.replace_turn,
            ) as turn:
                if streamed:
                    return await stream_reply(request, turn, trace_id)
                return await plain_reply(request, turn, trace_id)
        except TurnNotFound as gone:  # raised before the turn began: nothing was asked
            raise ApiError(409, f"{gone} Load the history again.") from None


async def plain_reply(request: web.Request, turn: Turn, trace_id: str | None) -> web.Response:
    """The contract's JSON answer: the whole reply, once the exchange is stored (a store
    that fails here is the contract's "Failed to store the message.": errors.py)."""
    try:
        async with (
            ReplyDeadline(service_app(request)[SETTINGS].reply_deadline_s),
            contextlib.aclosing(turn.reply()) as pieces,
        ):
            reply = "".join([piece async for piece in pieces])
    except (ModelBusy, TooManyReplies) as refusal:
        return no_slot_response(refusal)
    except AssistantError as exc:
        log_model_failure(exc, turn)
        return error_response(*model_failure(exc))
    exchange = await turn.save(reply, trace_id=trace_id)
    record_exchange(request, turn, exchange, reply)
    return json_response(reply_body(reply))
