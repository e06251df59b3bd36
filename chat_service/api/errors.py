"""The contract's error bodies and the middleware that guarantees every error uses them.

No request ever gets aiohttp's HTML/text error page or a stack trace: client errors
become ``{"status": "error", "message": ...}`` with the right status, and anything
unexpected is logged once, here, and answered with a generic 500 of the same shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from chat_service.api.jsonio import json_response

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
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


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
    """Turn every error raised below into the contract's JSON error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return refuse(request, exc.status, exc.message, exc.headers)
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
