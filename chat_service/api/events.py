"""``GET /chat/events``: a conversation's new exchanges, live, as server-sent events.

Each exchange committed to the conversation after the request, by any replica, is one
``exchange`` event whose ``id`` is the exchange's cursor (its turn, ``t42``, and its
generation once the conversation was cut, ``t7.1``: cursors.py) and whose data is the
contract's history item, ``{"user": ..., "AI": ...}``. When the conversation is cut at a
turn (a message regenerated or edited), a ``cut`` event without an id, ``{"turn": 7}``,
says that every exchange from that turn on is gone; the ones that replace them follow. The
browser's EventSource reconnects by itself with ``Last-Event-ID``, and the stream resumes
after that exchange, with no gap and no repeat, and with the cuts it missed (see
chat_service/chat/live.py).

A cursor of an earlier version (a bare number: an exchange's global id) is not refused:
an EventSource reconnects with the last id it saw, and a page loaded before an update
would meet a 400 on every retry. The stream starts from now instead, with a ``restart``
event that says why and whose ``id`` is where it starts, so the next reconnection resumes
exactly.

Validation errors, auth and rate limits answer plain JSON before the stream starts; so
does a store that cannot say where the conversation stands (500). The stream ends when the
follower falls too far behind, the conversation is deleted or the service stops; clients
reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from chat_service.api.cursors import cursor
from chat_service.api.errors import when_the_store_fails
from chat_service.api.event_stream import EventStream
from chat_service.api.identity import callers_conversation
from chat_service.api.keys import CHAT, KEEPALIVE, METRICS, STREAM_LIMITS, service_app
from chat_service.api.validation import parse_events_query
from chat_service.chat.contract import exchange_json
from chat_service.chat.domain import Position, StoreError
from chat_service.chat.live import Cut, LiveChange

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/events")
@when_the_store_fails("Failed to follow the conversation.")
async def get_events(request: web.Request) -> web.StreamResponse:
    query = parse_events_query(request.query, request.headers)
    conversation = callers_conversation(request, query.conversation_id)
    chat = service_app(request)[CHAT]
    with request.config_dict[STREAM_LIMITS].hold(request):
        after = None
        if query.after_turn is not None:
            after = Position(query.after_turn, query.generation)
        restart = None
        if query.earlier_cursor_in is not None:
            after = await chat.position(conversation)
            restart = (restart_json(query.earlier_cursor_in), cursor(*after))
        async with chat.follow(conversation, after) as changes:
            return await _send_events(request, changes, restart)


async def _send_events(
    request: web.Request,
    changes: AsyncIterator[LiveChange],
    restart: tuple[bytes, str] | None,
) -> web.StreamResponse:
    """The stream: first the ``restart`` event (its data and id) when the client resumed
    from an earlier version's cursor, then each exchange as it is committed, and each cut."""
    app = service_app(request)
    stream = EventStream(request, app[KEEPALIVE])
    await stream.open()
    gauge = app[METRICS].event_subscriptions
    gauge.inc()
    try:
        if restart is not None:
            data, event_id = restart
            await stream.send(b"restart", data, event_id)
        async for change in changes:
            if isinstance(change, Cut):
                await stream.send(b"cut", orjson.dumps({"turn": change.turn}))
            else:
                await stream.send(b"exchange", exchange_json(change), change.cursor)
    except StoreError:
        # Catching up failed mid-stream: end it; the client resumes where it was.
        log.warning("live updates stream ended by a store error", exc_info=True)
    finally:
        gauge.dec()
        stream.close()
    return stream.response


def restart_json(field: str) -> bytes:
    """The data of the ``restart`` event: what happened, and what a client should do."""
    message = (
        f"{field} is a cursor from an earlier version of the service. This stream follows "
        "the conversation from now on (its events' ids are the new cursors); load the "
        "history again for what came before."
    )
    return orjson.dumps({"message": message})
