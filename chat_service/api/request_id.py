"""``X-Request-ID``: one id per request, on the response and in the access-log line.

A caller (or a proxy: NGINX sends its own) that names its request finds that name in our
logs; one that does not gets an id made up here, to quote when something went wrong. The
header is set while the response is prepared, so errors and streamed responses carry it too.
A caller's value is taken only when it is 1 to 200 printable ASCII characters: anything else
(control characters, other encodings, a megabyte) is replaced, never echoed.
"""

from __future__ import annotations

import os

from aiohttp import web

HEADER = "X-Request-ID"
MAX_LENGTH = 200
REQUEST_ID = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """The request's id: the caller's when acceptable, else a new one (32 hex digits)."""
    known = request.get(REQUEST_ID)
    if known is None:
        sent = request.headers.get(HEADER, "")
        acceptable = 0 < len(sent) <= MAX_LENGTH and sent.isascii() and sent.isprintable()
        # 128 random bits in 32 hex digits (a UUID4's length, not a UUID: no version bits).
        known = request[REQUEST_ID] = sent if acceptable else os.urandom(16).hex()
    return known


def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """The id on every response."""
    response.headers[HEADER] = request_id(request)
