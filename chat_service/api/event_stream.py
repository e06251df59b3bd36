"""Server-sent events, written as ready-made bytes: the reply streams (streaming.py) and the
live streams (events.py, conversation_events.py).

The reply stream is the relay's hot path: every piece of every streamed reply passes here.
aiohttp-sse, which served both before, spent a fifth of the relay's CPU in its ``send``
(bench/README.md, scenario g): a regular expression to split the data into lines, a string
buffer, and an ``asyncio.timeout`` armed and cancelled around every write. Here an event is
one bytes concatenation and one write. Its data is JSON from orjson, which never holds a
line break, so it is always one ``data:`` line. A live stream is mostly idle: aiohttp-sse
kept a task per stream to send its keep-alive comments, each with its coroutine, frame and
sleep; here it is one timer handle (bench/README.md, scenario h).

What aiohttp-sse gave is kept:

- **The headers** streams need: ``Content-Type: text/event-stream``, ``Cache-Control:
  no-cache``, ``X-Accel-Buffering: no`` (NGINX must not buffer it), chunked encoding.
- **A stalled client is dropped**: the kernel aborts the connection when what was written
  stays unacknowledged for ``SEND_TIMEOUT_S`` (``TCP_USER_TIMEOUT``, Linux), which catches a
  hung peer at its first unanswered write, with no timer per write. The option is put back
  when the stream ends, for whatever the connection serves next.
- **A comment line** (``: ping``) when nothing was written for ``keepalive_s``, which keeps an
  idle stream open through proxies: one timer per stream, moved on only when it fires, never
  by a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp import web

SEND_TIMEOUT_S = 120.0
PING = b": ping\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
_TCP_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)


class EventStream:
    """The event stream of one response, started by :meth:`open`, ended by :meth:`close`."""

    def __init__(self, request: web.Request, *, keepalive_s: float) -> None:
        self._request = request
        self._keepalive_s = keepalive_s
        self._loop = asyncio.get_running_loop()
        self.response = web.StreamResponse(headers=HEADERS)
        self._written_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._ping: asyncio.Task[None] | None = None
        # The socket (asyncio's TransportSocket), its option and the value to put back.
        self._saved: tuple[Any, int, int] | None = None

    async def open(self) -> None:
        """Send the status and headers, and start the keep-alive timer."""
        self._drop_when_stalled()
        self.response.enable_chunked_encoding()
        await self.response.prepare(self._request)
        self._written_at = self._loop.time()
        self._timer = self._loop.call_later(self._keepalive_s, self._keepalive_due)

    async def send(self, event: bytes, data: bytes, event_id: str | None = None) -> None:
        """One event: ``event`` named, one line of ``data`` (no line break in it)."""
        self._written_at = self._loop.time()
        head = b"event: " + event + b"\n"
        if event_id is not None:
            head += b"id: " + event_id.encode() + b"\n"
        await self.response.write(head + b"data: " + data + b"\n\n")

    def close(self) -> None:
        """Stop the keep-alive and give the socket its own timeout back."""
        if self._timer is not None:
            self._timer.cancel()
        if self._ping is not None:
            self._ping.cancel()
        if self._saved is not None:
            sock, option, value = self._saved
            if sock.fileno() >= 0:  # not once the connection is closed
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            self._saved = None

    def _keepalive_due(self) -> None:
        idle = self._loop.time() - self._written_at
        if idle < self._keepalive_s:  # written since: look again when it would be due
            self._timer = self._loop.call_later(self._keepalive_s - idle, self._keepalive_due)
            return
        self._written_at = self._loop.time()
        self._ping = self._loop.create_task(self._send_ping())
        self._timer = self._loop.call_later(self._keepalive_s, self._keepalive_due)

    async def _send_ping(self) -> None:
        # A client gone meanwhile: the reply's own next write, or its cancellation, says so.
        with contextlib.suppress(ConnectionResetError):
            await self.response.write(PING)

    def _drop_when_stalled(self) -> None:
        transport = self._request.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        option = _TCP_USER_TIMEOUT
        if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self._saved = (sock, option, sock.getsockopt(socket.IPPROTO_TCP, option))
        sock.setsockopt(socket.IPPROTO_TCP, option, int(SEND_TIMEOUT_S * 1000))
