"""Where every JSON log line goes: one byte stream (stdout), lines whole and in order.

The access log writes a line per request from the event loop; under load one turn of the
loop serves many requests, so those lines wait in a buffer until the turn ends and leave
in one write (with PYTHONUNBUFFERED, as in the image, every line would otherwise be its
own write(2)). Records from ``logging``, from any thread, are written at once, after
whatever waits, so the order of lines is the order they were logged.

A stream that fails (stdout closed, disk full) costs the lines, never a request: the
failure is reported once on stderr, as ``logging`` reports a handler's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from typing import Protocol


class ByteStream(Protocol):
    """What is needed of stdout's bytes: a buffered or a raw (unbuffered) stream."""

    def write(self, data: memoryview, /) -> int | None: ...

    def flush(self) -> None: ...


class LineOutput:
    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._pending = bytearray()
        self._lock = threading.Lock()  # records arrive from other threads too
        self._flush_scheduled = False  # touched by the event loop only
        self._failed = False

    def write_soon(self, line: bytes) -> None:
        """From the event loop: ``line`` leaves when the loop's current turn ends."""
        with self._lock:
            self._pending += line
            self._pending += b"\n"
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to wait for
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def write_now(self, line: bytes) -> None:
        """From anywhere: ``line`` leaves now, after the lines waiting before it."""
        with self._lock:
            self._pending += line
            self._pending += b"\n"
            self._drain()

    def flush(self) -> None:
        self._flush_scheduled = False
        with self._lock:
            self._drain()

    def _drain(self) -> None:
        if not self._pending:
            return
        data = memoryview(bytes(self._pending))
        self._pending.clear()
        try:
            while data:  # a raw (unbuffered) stream may take part of it
                written = self._stream.write(data)
                if not written:
                    raise BlockingIOError("the log stream took nothing")
                data = data[written:]
            self._stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream is closed
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        if self._failed:
            return
        self._failed = True
        with contextlib.suppress(OSError, ValueError):
            print(f"chat-service: log lines lost, stdout failed: {exc!r}", file=sys.stderr)


class LineHandler(logging.Handler):
    """A ``logging`` handler that writes each formatted record through a :class:`LineOutput`."""

    def __init__(self, output: LineOutput) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode()
        except Exception:
            self.handleError(record)
            return
        self._output.write_now(line)
