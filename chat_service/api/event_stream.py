"""Server-sent events, written as ready-made bytes: the reply streams (streaming.py) and the
live streams (events.py, conversation_events.py).

The reply stream is the relay's hot path: every piece of every streamed reply passes here.
aiohttp-sse, which served both before, spent a fifth of the relay's CPU in its ``send``
(bench/README.md, scenario g): a regular expression to split the data into lines, a string
buffer, and an ``asyncio.timeout`` armed and cancelled around every write. Here an event is
one bytes concatenation and one write. Its data is JSON from orjson, which never holds a
line break, so it is always one ``data:`` line. A live stream is mostly idle: aiohttp-sse
kept a task per stream to send its keep-alive comments, each with its coroutine, frame and
sleep; here all of them share one timer (bench/README.md, scenario h).

What aiohttp-sse gave is kept:

- **The headers** streams need: ``Content-Type: text/event-stream``, ``Cache-Control:
  no-cache``, ``X-Accel-Buffering: no`` (NGINX must not buffer it), chunked encoding.
- **A stalled client is dropped**: the kernel aborts the connection when what was written
  stays unacknowledged for ``SEND_TIMEOUT_S`` (``TCP_USER_TIMEOUT``, Linux), which catches a
  hung peer at its first unanswered write, with no timer per write. The option is put back
  when the stream ends, for whatever the connection serves next.
- **A comment line** (``: ping``) when nothing was written for ``keepalive_s``, which keeps an
  idle stream open through proxies. One timer for all the open streams (:class:`KeepAlive`),
  not one per stream: it looks at them every quarter of ``keepalive_s`` (at most every
  second) and writes the comments that are due, in one task, one after another. A write
  never waits there: a stream with something still queued for its client is not pinged (its
  client is not reading; the kernel's timeout above is on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 120.0
PING = b": ping\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
_TCP_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)


MAX_TICK_S = 1.0


class KeepAlive:
    """The keep-alive comments of every open stream of an application, from one timer."""

    def __init__(self, keepalive_s: float) -> None:
        self.keepalive_s = keepalive_s
        # A stream is pinged between keepalive_s and keepalive_s + tick idle.
        self._tick_s = min(MAX_TICK_S, keepalive_s / 4)
        self._streams: set[EventStream] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._pinging: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: EventStream) -> None:
        self._streams.add(stream)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick_s, self._tick)

    def discard(self, stream: EventStream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self.close()

    def close(self) -> None:
        """Stop the timer (it starts again with the next stream)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [s for s in self._streams if now - s.written_at >= self.keepalive_s]
        # The last round's comments still going out: these wait for the next tick.
        if due and (self._pinging is None or self._pinging.done()):
            self._pinging = loop.create_task(_ping_each(due))
        self._timer = loop.call_later(self._tick_s, self._tick)


async def _ping_each(streams: list[EventStream]) -> None:
    for stream in streams:
        try:
            await stream.ping()
        except Exception:  # one stream's fault must not leave the others unpinged
            log.exception("a keep-alive comment could not be written")


class EventStream:
    """The event stream of one response, started by :meth:`open`, ended by :meth:`close`."""

    def __init__(self, request: web.Request, keepalive: KeepAlive) -> None:
        self._request = request
        self._keepalive = keepalive
        self._loop = asyncio.get_running_loop()
        self.response = web.StreamResponse(headers=HEADERS)
        self.written_at = 0.0
        self._open = False
        # The socket (asyncio's TransportSocket), its option and the value to put back.
        self._saved: tuple[Any, int, int] | None = None

    async def open(self) -> None:
        """Send the status and headers; from now on it is kept alive."""
        self._drop_when_stalled()
        self.response.enable_chunked_encoding()
        await self.response.prepare(self._request)
        self.written_at = self._loop.time()
        self._open = True
        self._keepalive.add(self)

    async def send(self, event: bytes, data: bytes, event_id: str | None = None) -> None:
        """One event: ``event`` named, one line of ``data`` (no line break in it)."""
        self.written_at = self._loop.time()
        head = b"event: " + event + b"\n"
        if event_id is not None:
            head += b"id: " + event_id.encode() + b"\n"
        await self.response.write(head + b"data: " + data + b"\n\n")

    async def ping(self) -> None:
        """The keep-alive comment, unless the stream ended or its client has not read what
        was written yet (then the comment would only wait behind it)."""
        transport = self._request.transport
        if not self._open or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            return
        self.written_at = self._loop.time()
        # A client gone meanwhile: the stream's own next write, or its cancellation, says so.
        with contextlib.suppress(ConnectionResetError):
            await self.response.write(PING)

    def close(self) -> None:
        """Stop the keep-alive and give the socket its own timeout back."""
        if self._open:
            self._open = False
            self._keepalive.discard(self)
        if self._saved is not None:
            sock, option, value = self._saved
            if sock.fileno() >= 0:  # not once the connection is closed
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            self._saved = None

    def _drop_when_stalled(self) -> None:
        transport = self._request.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        option = _TCP_USER_TIMEOUT
        if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self._saved = (sock, option, sock.getsockopt(socket.IPPROTO_TCP, option))
        sock.setsockopt(socket.IPPROTO_TCP, option, int(SEND_TIMEOUT_S * 1000))
