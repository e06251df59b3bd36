"""What the plain and the streamed ``POST /chat/message`` share: their error answers, the
reply's overall deadline, the log line of a model failure, and the access-log fields of a
stored exchange."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from aiohttp import web

from chat_service.api.access_log import EVENT_FIELDS
from chat_service.api.errors import error_response
from chat_service.api.keys import SETTINGS, service_app
from chat_service.assistant import AssistantError
from chat_service.chat.domain import Exchange
from chat_service.chat.model_slots import ModelBusy, TooManyReplies
from chat_service.chat.replies import Turn

log = logging.getLogger(__name__)

ASSISTANT_FAILED = "The assistant failed to reply."
# What a client is told of the failures a reader can act on, by the failure's type
# (AssistantError.error_type: the SDK's names, and the service's own TimeoutError): what went
# wrong, never the model server's words, which may quote the request or part of a key. Any
# other failure is ASSISTANT_FAILED; the log and the span name its type either way.
_REFUSED_KEY = "The model server refused the service's API key."
_TIMED_OUT = "The model did not answer in time."
MODEL_FAILURES = {
    "APIConnectionError": "The model server could not be reached.",
    "AuthenticationError": _REFUSED_KEY,
    "PermissionDeniedError": _REFUSED_KEY,
    "RateLimitError": "The model server is limiting the service's requests; try again shortly.",
    "APITimeoutError": _TIMED_OUT,
    "TimeoutError": _TIMED_OUT,
}
# Whatever broke a reply once it had begun: the reader saw part of it.
STOPPED_MID_REPLY = "The model stopped in the middle of its reply."
ASSISTANT_BUSY = "The assistant is busy; try again in a moment."
# How long a client refused for model overload should wait before trying again.
BUSY_RETRY_AFTER_S = 2


# How long a caller at its cap of replies should wait: about when a short reply ends.
CAP_RETRY_AFTER_S = 1


def no_slot_response(refusal: ModelBusy | TooManyReplies) -> web.Response:
    """The answer to a reply that could not have a model slot: 429 when the caller has its
    share already (it can act on that), 503 when every slot stayed busy."""
    if isinstance(refusal, TooManyReplies):
        return error_response(
            429,
            f"You have {refusal.limit} replies in progress already, as many as one caller may "
            "(CHAT_MAX_REPLIES_PER_CALLER); wait for one to finish.",
            headers={"Retry-After": str(CAP_RETRY_AFTER_S)},
        )
    log.warning("no model slot free", extra={"waited_s": refusal.waited_s})
    return error_response(503, ASSISTANT_BUSY, headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


class ReplyTooSlow(AssistantError):
    """The reply took longer than CHAT_REPLY_DEADLINE_S in all."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(
            f"The assistant took longer than {deadline_s:g} s to reply.", error_type="deadline"
        )


class ReplyDeadline:
    """Bound a whole reply (the per-read timeout bounds each wait for the model, not a model
    that keeps trickling): past ``seconds``, whatever the block awaits is cancelled and
    :class:`ReplyTooSlow` raised in its place. One timer per reply.

    A class rather than a generator-based context manager: it wraps every reply, and the
    generator machinery cost more than asyncio's timer itself (bench/README.md, issue 26).
    """

    __slots__ = ("_seconds", "_timeout")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, traceback)
        except TimeoutError:
            if self._timeout.expired():
                raise ReplyTooSlow(self._seconds) from None
            raise


def model_failure(exc: AssistantError, *, mid_reply: bool = False) -> tuple[int, str]:
    """The status and message a client is told of a failed reply: the deadline is the
    service's own and says so (504); the model's failures say what went wrong when a reader
    can act on it (``mid_reply``: some of the reply was already sent)."""
    if isinstance(exc, ReplyTooSlow):
        return 504, str(exc)
    if mid_reply:
        return 500, STOPPED_MID_REPLY
    return 500, MODEL_FAILURES.get(exc.error_type, ASSISTANT_FAILED)


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
    if service_app(request)[SETTINGS].log_content:
        fields |= {"user_message": turn.message, "ai_response": reply}
    request[EVENT_FIELDS] = fields
