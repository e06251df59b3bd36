"""What the plain and the streamed ``POST /chat/message`` share: their error answers, the
log line of a model failure, and the access-log fields of a stored exchange."""

from __future__ import annotations

import logging

from aiohttp import web

from chat_service.api.access_log import EVENT_FIELDS
from chat_service.api.errors import error_response
from chat_service.api.keys import SETTINGS
from chat_service.assistant import AssistantError
from chat_service.chat.domain import Exchange
from chat_service.chat.replies import ModelBusy, Turn

log = logging.getLogger(__name__)

ASSISTANT_FAILED = "The assistant failed to reply."
ASSISTANT_BUSY = "The assistant is busy; try again in a moment."
# How long a client refused for model overload should wait before trying again.
BUSY_RETRY_AFTER_S = 2


def model_busy_response(busy: ModelBusy) -> web.Response:
    log.warning("no model slot free", extra={"waited_s": busy.waited_s})
    return error_response(503, ASSISTANT_BUSY, headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


def log_model_failure(exc: AssistantError, turn: Turn) -> None:
    """Once per failed request, with the failure's type: never a traceback, whose chained
    SDK errors can quote the model server's answer (user text, part of a key)."""
    log.error(
        "the assistant failed to reply: %s",
        exc,
        extra={"error_type": exc.error_type, "conversation_id": turn.conversation.id},
    )


def record_exchange(
    request: web.Request,
    turn: Turn,
    exchange: Exchange,
    reply: str,
    *,
    streamed: bool = False,
    stopped: bool = False,
) -> None:
    """Fields for the request's one access-log line (see telemetry/logs.py)."""
    fields: dict[str, object] = {
        # The caller's id for it: the principal has a field of its own (access_log.py).
        "conversation_id": exchange.conversation.id,
        "exchange_id": exchange.id,
        "turn": exchange.turn,
        "message_chars": len(turn.message),
        "reply_chars": len(reply),
    }
    if streamed:
        fields["streamed"] = True
    if stopped:
        fields["stopped"] = True
    if request.config_dict[SETTINGS].log_content:
        fields |= {"user_message": turn.message, "ai_response": reply}
    request[EVENT_FIELDS] = fields
