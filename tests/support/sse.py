"""A blocking client for the service's server-sent events, for process tests.

Reads a ``text/event-stream`` response line by line as the server writes it, and parses
events as the SSE specification does (``event:``/``data:``/``id:`` fields, comment lines,
CRLF or LF line ends, blank line ends an event). ``close()`` drops the connection at once,
which is how a client stops a reply. :func:`read_events` and :func:`parse_events` do the same
for aiohttp's client, in process tests.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientResponse

# How long read_events waits for the events it expects.
READ_TIMEOUT_S = 10


@dataclass(frozen=True)
class Event:
    event: str
    data: Any  # the data field, decoded as JSON
    received_at: float  # time.monotonic() when its last line arrived
    id: str | None = None  # the id field, when the event has one


@dataclass
class EventStream:
    connection: http.client.HTTPConnection
    comments: list[str] = field(default_factory=list)
    _response: http.client.HTTPResponse | None = None

    @property
    def response(self) -> http.client.HTTPResponse:
        """The response, waited for on first use (a stream's headers leave with its first
        event, so a test can also close the request before they arrive)."""
        if self._response is None:
            self._response = self.connection.getresponse()
        return self._response

    @property
    def status(self) -> int:
        return self.response.status

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def body(self) -> Any:
        """The whole body as JSON: for answers that are not streams (errors)."""
        return json.loads(self.response.read())

    def events(self) -> Iterator[Event]:
        name, data, event_id = "message", list[str](), None
        while True:
            raw = self.response.readline()
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    yield Event(name, json.loads("\n".join(data)), time.monotonic(), event_id)
                name, data, event_id = "message", [], None
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = value

    def close(self) -> None:
        """Drop the connection (the socket is shut, not drained)."""
        sock = self.connection.sock
        if sock is not None:
            sock.close()
        self.connection.close()


def post_stream(
    port: int,
    body: Any,
    *,
    path: str = "/chat/message",
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> EventStream:
    """``POST`` ``body`` (JSON) asking for an event stream; the response is read on demand."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request(
        "POST",
        path,
        body=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **(headers or {}),
        },
    )
    return EventStream(connection)


def get_stream(
    port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 30
) -> EventStream:
    """``GET`` an event stream (``/chat/events``); the response is read on demand."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
    return EventStream(connection)


@dataclass(frozen=True)
class Received:
    """An event read by :func:`read_events` or :func:`parse_events` (aiohttp's client)."""

    event: str
    id: str | None
    data: Any


async def read_events(response: ClientResponse, count: int) -> list[Received]:
    """The next ``count`` events of an aiohttp response's stream, parsed as the SSE
    specification says (a block without ``data`` is no event)."""
    received: list[Received] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(READ_TIMEOUT_S):
        while len(received) < count:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                received.append(
                    Received(
                        fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
                    )
                )
            fields = {}
    return received


def parse_events(text: str) -> list[Received]:
    """Every event of a whole stream, read to its end."""
    parsed = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            parsed.append(
                Received(
                    fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
                )
            )
    return parsed
