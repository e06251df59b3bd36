"""Server-sent events for ``POST /chat/message`` with ``Accept: text/event-stream``.

The reply goes out as it is produced: ``delta`` events with the next piece of text, then
``done`` with the contract's success body once the exchange is committed (so ``done``
means what a 200 means), or ``error`` with the contract's error body (nothing stored).
The response starts with the first piece, so anything that fails before it (validation,
limits, a busy or failing model) is still a plain JSON error with its own status. The events
are written by event_stream.py, with the headers streams need (``Cache-Control: no-cache``,
``X-Accel-Buffering: no`` for NGINX) and a comment line after CHAT_STREAM_KEEPALIVE_S (15 s)
without one, which keeps an idle stream open through proxies.

A client that closes the connection stops the reply: the model call is closed (the model
server sees it go and stops generating) and the part of the reply the client was sent is
stored, so the history shows what the user saw. Nothing sent, nothing stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiohttp import web

from chat_service.api.errors import INTERNAL_ERROR, STORE_FAILED, error_response
from chat_service.api.event_stream import EventStream
from chat_service.api.keys import KEEPALIVE, METRICS, SETTINGS, service_app
from chat_service.api.replies import (
    ReplyDeadline,
    log_model_failure,
    model_failure,
    no_slot_response,
    record_exchange,
)
from chat_service.assistant import AssistantError
from chat_service.chat.contract import reply_body
from chat_service.chat.domain import StoreError
from chat_service.chat.model_slots import ModelBusy, TooManyReplies
from chat_service.chat.replies import Turn

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"


def wants_event_stream(request: web.Request) -> bool:
    """Whether the client's Accept header asks for server-sent events: it names
    ``text/event-stream`` with a weight above zero (RFC 9110 §12.5.1)."""
    for media_range in request.headers.get("Accept", "").split(","):
        media_type, *params = (part.strip().lower() for part in media_range.split(";"))
        if media_type == EVENT_STREAM and _weight(params) > 0:
            return True
    return False


def _weight(params: list[str]) -> float:
    """A media range's ``q``: 1 when absent; 0 when it is not a number (a client that
    garbles it gets the default, JSON)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


async def stream_reply(
    request: web.Request, turn: Turn, trace_id: str | None
) -> web.StreamResponse:
    """The reply to ``turn`` as an event stream, or a JSON error if it fails before its
    first piece. Returns when the stream ends, so the request's span, access-log line and
    duration cover all of it."""
    stream = _Stream(request)
    try:
        return await _relay(stream, turn, trace_id)
    except Exception:
        if stream.response is None:
            raise  # nothing sent yet: the error middleware answers with the JSON 500
        # The status went out with the first piece: the stream must end here, with the
        # contract's error event, or the client waits for an end that never comes.
        log.exception("the event stream failed after it opened")
        await _send_error(stream.response, INTERNAL_ERROR)
        return stream.response.response
    finally:
        stream.closed()


class _Stream:
    """The event stream of one request, opened with the first piece it sends."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: EventStream | None = None
        self._gauge = service_app(request)[METRICS].streams_open

    async def open(self) -> EventStream:
        if self.response is None:
            self.response = EventStream(self.request, service_app(self.request)[KEEPALIVE])
            await self.response.open()
            self._gauge.inc()
        return self.response

    def closed(self) -> None:
        if self.response is not None:
            self.response.close()
            self._gauge.dec()


async def _relay(stream: _Stream, turn: Turn, trace_id: str | None) -> web.StreamResponse:
    request = stream.request
    sent: list[str] = []
    try:
        # The deadline outermost: when it ends the reply while a piece is being sent, the
        # cancellation is its own (ReplyTooSlow below), not a client that left.
        async with (
            ReplyDeadline(service_app(request)[SETTINGS].reply_deadline_s),
            contextlib.aclosing(turn.reply()) as pieces,
        ):
            async for piece in pieces:
                events = await stream.open()
                await events.send(b"delta", orjson.dumps({"text": piece}))
                sent.append(piece)
    except (ModelBusy, TooManyReplies) as refusal:
        return no_slot_response(refusal)
    except AssistantError as exc:
        log_model_failure(exc, turn)
        status, message = model_failure(exc, mid_reply=bool(sent))
        if stream.response is None:
            return error_response(status, message)
        await _send_error(stream.response, message)
        return stream.response.response
    except (asyncio.CancelledError, ConnectionResetError):
        # The client went away (or the server is stopping): keep what it was sent.
        await _save_stopped(request, turn, "".join(sent), trace_id)
        raise
    reply = "".join(sent)
    events = await stream.open()  # already open, unless the reply is empty
    try:
        exchange = await turn.save(reply, trace_id=trace_id)
    except StoreError:  # after the stream opened: the error event, not the middleware's 500
        log.exception("failed to store the exchange")
        await _send_error(events, STORE_FAILED)
        return events.response
    record_exchange(request, turn, exchange, reply, streamed=True)
    # Its id is the exchange's cursor, as in GET /chat/events: a page that follows the
    # conversation knows this exchange when it comes back there.
    await events.send(b"done", orjson.dumps(reply_body(reply)), exchange.cursor)
    return events.response


async def _send_error(events: EventStream, message: str) -> None:
    with contextlib.suppress(ConnectionResetError):
        await events.send(b"error", orjson.dumps({"status": "error", "message": message}))


async def _save_stopped(request: web.Request, turn: Turn, reply: str, trace_id: str | None) -> None:
    if not reply:
        return
    # Shielded: the commit completes even if the task is cancelled again meanwhile.
    try:
        exchange = await asyncio.shield(turn.save(reply, trace_id=trace_id))
    except StoreError:
        log.exception("failed to store the stopped reply")
        return
    record_exchange(request, turn, exchange, reply, streamed=True, stopped=True)
