"""``GET /chat/conversation-events``: the caller's list of conversations, live, as server-sent
events (the page's sidebar, in every tab and on every device, follows it).

First a ``ready`` event: from then on nothing is missed, so a client (re)loads the list
(``GET /chat/conversations``) when it comes. Then, for each of the caller's conversations
created, renamed, written to or deleted by any replica, a ``conversation`` event whose data is
the conversation as ``GET /chat/conversations/{id}`` gives it, or a ``deleted`` event whose
data is ``{"id": ...}``. ``ready`` comes again whenever changes may have been missed (a
replica lost its notifications for a while): the client loads the list again. Events have no
ids and a stream does not resume: a client that reconnects gets ``ready`` and reloads.

Not under ``/chat/conversations/``: there ``events`` would be a conversation's id. Auth, CORS,
rate limits and the caps on open streams are ``/chat``'s, as for ``/chat/events``; the stream
ends when the caller falls more than 256 changes behind or the service stops (clients
reconnect), and only ever tells the caller of its own conversations (chat/list_updates.py
follows an owner, the caller's namespace).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from chat_service.api.errors import when_the_store_fails
from chat_service.api.event_stream import EventStream
from chat_service.api.identity import owner
from chat_service.api.keys import CHAT, KEEPALIVE, METRICS, STREAM_LIMITS, service_app
from chat_service.chat.contract import conversation_body
from chat_service.chat.domain import Conversation
from chat_service.chat.list_updates import Deleted, ListChange

routes = web.RouteTableDef()


@routes.get("/conversation-events")
@when_the_store_fails("Failed to follow the conversations.")
async def get_conversation_events(request: web.Request) -> web.StreamResponse:
    with request.config_dict[STREAM_LIMITS].hold(request):
        async with service_app(request)[CHAT].follow_conversations(owner(request)) as changes:
            return await _send_events(request, changes)


async def _send_events(
    request: web.Request, changes: AsyncIterator[ListChange]
) -> web.StreamResponse:
    app = service_app(request)
    stream = EventStream(request, app[KEEPALIVE])
    await stream.open()
    gauge = app[METRICS].list_subscriptions
    gauge.inc()
    try:
        async for change in changes:
            event, data = event_of(change)
            await stream.send(event, orjson.dumps(data))
    finally:
        gauge.dec()
        stream.close()
    return stream.response


def event_of(change: ListChange) -> tuple[bytes, object]:
    """A change's event: its name and its data."""
    if isinstance(change, Conversation):
        return b"conversation", conversation_body(change)
    if isinstance(change, Deleted):
        return b"deleted", {"id": change.id}
    return b"ready", {}
