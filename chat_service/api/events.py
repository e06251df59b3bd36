"""``GET /chat/events``: a conversation's new exchanges, live, as server-sent events.

Each exchange committed to the conversation after the request, by any replica, is one
``exchange`` event whose ``id`` is the exchange's cursor (the ``before`` of history
pages) and whose data is the contract's history item, ``{"user": ..., "AI": ...}``. The
browser's EventSource reconnects by itself with ``Last-Event-ID``, and the stream resumes
after that exchange, with no gap and no repeat (see chat_service/chat/live.py).

Validation errors, auth and rate limits answer plain JSON before the stream starts; so
does a store that cannot say where the conversation stands (500). The stream ends when the
follower falls too far behind, the conversation is deleted or the service stops; clients
reconnect.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from chat_service.api.errors import when_the_store_fails
from chat_service.api.identity import callers_conversation
from chat_service.api.keys import CHAT, METRICS, SETTINGS, STREAM_LIMITS
from chat_service.api.validation import parse_events_query
from chat_service.chat.contract import exchange_json
from chat_service.chat.domain import Exchange, StoreError

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/events")
@when_the_store_fails("Failed to follow the conversation.")
async def get_events(request: web.Request) -> web.StreamResponse:
    query = parse_events_query(request.query, request.headers)
    conversation = callers_conversation(request, query.conversation_id)
    with request.config_dict[STREAM_LIMITS].hold(request):
        follow = request.config_dict[CHAT].follow(conversation, query.last_event_id)
        async with follow as exchanges:
            return await _send_events(request, exchanges)


async def _send_events(
    request: web.Request, exchanges: AsyncIterator[Exchange]
) -> web.StreamResponse:
    keepalive = request.config_dict[SETTINGS].stream_keepalive_s
    response = EventSourceResponse(ping_interval=keepalive)
    await response.prepare(request)
    gauge = request.config_dict[METRICS].event_subscriptions
    gauge.inc()
    try:
        async for exchange in exchanges:
            await response.send(exchange_json(exchange), event="exchange", id=str(exchange.id))
    except StoreError:
        # Catching up failed mid-stream: end it; the client resumes where it was.
        log.warning("live updates stream ended by a store error", exc_info=True)
    finally:
        gauge.dec()
        response.stop_streaming()  # the keep-alive comments
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
