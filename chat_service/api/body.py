"""Reading a request's body, within a deadline.

A client that declares a body and then sends it a few bytes at a time, or stops, holds a
connection, a descriptor and a buffer for as long as it likes: aiohttp bounds the wait for
headers, not for the body. So each body must arrive within CHAT_BODY_TIMEOUT_S; past it,
408 with the error shape and ``Connection: close``: the connection takes no other request,
and aiohttp gives the rest of the body at most its lingering time (10 s) before closing it
(so that the client, still sending, reads the answer rather than a reset).
``client_max_size`` (CHAT_MAX_BODY_BYTES) bounds its size: 413 (errors.py).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from chat_service.api.errors import ApiError
from chat_service.api.keys import SETTINGS, service_app


async def read_body(request: web.Request) -> bytes:
    if request.content.is_eof():
        # All of it came with the headers, as a small body mostly does: nothing to wait for,
        # so no timer to arm and cancel (bench a and g: every message).
        return await request.read()
    timeout = service_app(request)[SETTINGS].body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            f"The request body did not arrive within {timeout:g} s (CHAT_BODY_TIMEOUT_S).",
            close=True,
        ) from None
