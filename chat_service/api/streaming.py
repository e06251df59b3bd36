"""Server-sent events for ``POST /chat/message`` with ``Accept: text/event-stream``.

The reply goes out as it is produced: ``delta`` events with the next piece of text, then
``done`` with the contract's success body once the exchange is committed (so ``done``
means what a 200 means), or ``error`` with the contract's error body (nothing stored).
The response starts with the first piece, so anything that fails before it (validation,
limits, a busy or failing model) is still a plain JSON error with its own status.
aiohttp-sse supplies the headers streams need (``Cache-Control: no-cache``,
``X-Accel-Buffering: no`` for NGINX) and a comment line every 15 s, which keeps an idle
stream open through proxies.

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
from aiohttp_sse import EventSourceResponse

from chat_service.api.errors import error_response
from chat_service.api.replies import (
    ASSISTANT_FAILED,
    STORE_FAILED,
    log_model_failure,
    model_busy_response,
    record_exchange,
)
from chat_service.assistant import AssistantError
from chat_service.keys import METRICS
from chat_service.replies import ModelBusy, Turn
from chat_service.store import StoreError

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"


def wants_event_stream(request: web.Request) -> bool:
    """Whether the client's Accept header asks for server-sent events."""
    for media_range in request.headers.get("Accept", "").split(","):
        media_type, *params = (part.strip().lower() for part in media_range.split(";"))
        if media_type == EVENT_STREAM and "q=0" not in params:
            return True
    return False


async def stream_reply(
    request: web.Request, turn: Turn, trace_id: str | None
) -> web.StreamResponse:
    """The reply to ``turn`` as an event stream, or a JSON error if it fails before its
    first piece. Returns when the stream ends, so the request's span, access-log line and
    duration cover all of it."""
    gauge = request.app[METRICS].streams_open
    response: EventSourceResponse | None = None
    sent: list[str] = []
    try:
        try:
            async with contextlib.aclosing(turn.reply()) as pieces:
                async for piece in pieces:
                    if response is None:
                        response = await _open(request)
                        gauge.inc()
                    await response.send(_json({"text": piece}), event="delta")
                    sent.append(piece)
        except ModelBusy as busy:
            return model_busy_response(busy)
        except AssistantError as exc:
            log_model_failure(exc, turn)
            if response is None:
                return error_response(500, ASSISTANT_FAILED)
            await _send_error(response, ASSISTANT_FAILED)
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away (or the server is stopping): keep what it was sent.
            await _save_stopped(request, turn, "".join(sent), trace_id)
            raise
        reply = "".join(sent)
        if response is None:  # an empty reply: nothing was streamed yet
            response = await _open(request)
            gauge.inc()
        try:
            exchange = await turn.save(reply, trace_id=trace_id)
        except StoreError:
            log.exception("failed to store the exchange")
            await _send_error(response, STORE_FAILED)
            return response
        record_exchange(request, turn, exchange, reply, streamed=True)
        # Its id is the exchange's cursor, as in GET /chat/events: a page that follows the
        # conversation knows this exchange when it comes back there.
        await response.send(
            _json({"status": "Success", "response": reply}), event="done", id=str(exchange.id)
        )
        return response
    finally:
        if response is not None:
            gauge.dec()


async def _open(request: web.Request) -> EventSourceResponse:
    response = EventSourceResponse(allow_all_methods=True)
    await response.prepare(request)
    return response


async def _send_error(response: EventSourceResponse, message: str) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.send(_json({"status": "error", "message": message}), event="error")


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


def _json(data: object) -> str:
    return orjson.dumps(data).decode()
