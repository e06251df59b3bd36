"""The contract's error bodies and the middleware that guarantees every error uses them.

No request ever gets aiohttp's HTML/text error page or a stack trace: client errors
become ``{"status": "error", "message": ...}`` with the right status, and anything
unexpected is logged once, here, and answered with a generic 500 of the same shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from chat_service.api.jsonio import json_response
from chat_service.chat.domain import ExchangeNotStored, StoreError

log = logging.getLogger(__name__)

_REASONS = {
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body is too large.",
}


CLIENT_CLOSED_REQUEST = 499
# What a client is told of a failure the service did not foresee (a bug): nothing more.
INTERNAL_ERROR = "Internal server error."
# Why a request failed: the message of its error response (never the request's body), for
# its access-log line.
REQUEST_ERROR = web.RequestKey("error", str)


class ApiError(Exception):
    """A request the service refuses, with the status and message the client should see."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        # The connection closes after the answer (``Connection: close``): what the client
        # was still sending cannot be told from its next request.
        self.close = close


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The contract's error shape: ``{"status": "error", "message": ...}``."""
    return json_response({"status": "error", "message": message}, status=status, headers=headers)


def refuse(
    request: web.Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The error response for ``request``, whose access-log line then says why (``error``)."""
    request[REQUEST_ERROR] = message
    return error_response(status, message, headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error raised below into the contract's JSON error shape: a store's failure
    into the 500 its handler registered (:func:`when_the_store_fails`), logged once here."""
    try:
        return await handler(request)
    except ExchangeNotStored:
        log.exception(STORE_FAILED)
        return refuse(request, 500, STORE_FAILED)
    except StoreError:
        failure = _STORE_FAILURES.get(request.match_info.handler)
        if failure is None:
            log.exception("unhandled store error in %s %s", request.method, request.path)
            return refuse(request, 500, INTERNAL_ERROR)
        log.exception(failure.message)  # what the client is told, with the store's failure
        request[REQUEST_ERROR] = failure.message
        return json_response(failure.body(), status=500)
    except ApiError as exc:
        refusal = refuse(request, exc.status, exc.message, exc.headers)
        if exc.close:
            refusal.force_close()
        return refusal
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers: dict[str, str] = {}
        if exc.status == 405 and hdrs.ALLOW in exc.headers:
            headers["Allow"] = exc.headers[hdrs.ALLOW]
        message = _REASONS.get(exc.status, exc.reason + ".")
        if exc.status == 413:
            message = f"Request body is larger than {request.client_max_size} bytes."
        return refuse(request, exc.status, message, headers)
    except ConnectionResetError:
        # The client went away mid-request (aiohttp's read raises this): nothing to answer
        # and nothing wrong with the service. 499 as NGINX records it, for the access log.
        log.info("client closed the connection during %s %s", request.method, request.path)
        return refuse(request, CLIENT_CLOSED_REQUEST, "Client closed the request.")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return refuse(request, 500, INTERNAL_ERROR)


# -- the store's failures, answered in one place -------------------------------------------

# The contract's message for a reply that was made but could not be stored.
STORE_FAILED = "Failed to store the message."
_Handler = TypeVar("_Handler", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])


@dataclass(frozen=True, slots=True)
class _StoreFailure:
    message: str
    status_key: bool  # the error shape; False: ``{"message": ...}`` alone

    def body(self) -> dict[str, str]:
        if self.status_key:
            return {"status": "error", "message": self.message}
        return {"message": self.message}


_STORE_FAILURES: dict[object, _StoreFailure] = {}


def when_the_store_fails(
    message: str, *, status_key: bool = True
) -> Callable[[_Handler], _Handler]:
    """Register the 500 that ``message`` says for the handler this decorates, when the store
    fails under it. ``status_key=False``: the body is ``{"message": ...}`` alone, as the
    original contract's ``GET /chat/history`` answers."""

    def register(handler: _Handler) -> _Handler:
        _STORE_FAILURES[handler] = _StoreFailure(message, status_key)
        return handler

    return register
