"""``python -m bench.streams``: the load generator of scenario (g), many streamed chats at once.

wrk cannot read a server-sent event stream event by event, so this is a client of our own
(HTTP/1.1 in asyncio's protocol callbacks: :class:`_Connection`), run as its own process on
the load CPU (as wrk is). It opens ``--streams`` streamed chats (``POST /chat/message`` with
``Accept: text/event-stream``, each a new message in its own conversation, so no conversation
queues behind another), their starts spread evenly over ``--ramp`` seconds, reads every
event, and records per stream whether it ended with ``done``, the time to its first ``delta``
event and its total duration.

With ``--running N``, N more streams start over the ramp before those, and each keeps its
longest wait between deltas: what the others' starts did to streams already running.

In the same run, interleaved with them, it asks the model server directly for ``--direct``
streamed completions and records their time to the first chunk with content: the same first
token the service relays as its first ``delta``. The two TTFTs, measured by one client against
one model server under one load, differ by what the service adds.

That difference of percentiles is noisy: the model server and this client share the load CPU,
and their own delays move the direct streams' few samples. So each stream is measured on its
own as well. The bench asks the model server to stamp every reply's first piece with its own
time to it from the request's arrival (``stamp_first_chunk``); a stream's time to its first
piece minus that stamp is what the path to the model added to that stream: the relay's work
and hops for a stream through the service, the hops alone for a direct one. Its percentiles
over the run's streams are ``added_ms``.

It prints one line, ``BENCH_STREAMS {json}``, with the summary (percentiles, counts, its own
CPU time); the bench reads it (bench/stream_scenario.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

from chat_service.event_loop import choose_event_loop
from tests.support.model_server import model_seconds

MARKER = "BENCH_STREAMS "
# The first chunk of an OpenAI stream carries the role and empty content; the service relays
# content only, so the direct TTFT is to the first chunk whose delta has some.
_CONTENT = b'"content": "'
_EMPTY_CONTENT = b'"content": ""'
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 100.0)


@dataclass(slots=True)
class Stream:
    """One stream's outcome: times in seconds from just before its request was sent."""

    completed: bool = False
    first_s: float | None = None
    total_s: float | None = None
    # The model server's own time to the first piece (its stamp), when it stamped it.
    model_s: float | None = None
    # A stream already running when the others start: its longest wait between deltas.
    longest_gap_s: float | None = None
    events: int = 0  # deltas (service) or content chunks (direct)
    error: str | None = None


class OpenCount:
    """Streams open right now, and the most that were open at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


def _stamp(data: bytes, text: Callable[[Any], Any]) -> float | None:
    """The model server's stamp in an event's JSON data (``text`` finds the piece in it)."""
    try:
        piece = text(orjson.loads(data))
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None
    return model_seconds(piece) if isinstance(piece, str) else None


def _line_after(body: bytes, marker: bytes) -> bytes:
    """The rest of the line after the first ``marker`` in ``body`` (which holds it)."""
    start = body.index(marker) + len(marker)
    end = body.find(b"\n", start)
    return body[start:] if end < 0 else body[start:end]


# What the relays write for each event (event_stream.py; bench/reference_relay.py).
_DELTA, _DONE, _ERROR = b"event: delta\n", b"event: done\n", b"event: error\n"
_DELTA_DATA = _DELTA + b"data: "
_END = b"data: [DONE]"
# The end of a chunked body: the last chunk, empty, and no trailers.
_LAST_CHUNK = b"\r\n0\r\n\r\n"
_HEAD_END = b"\r\n\r\n"
_CHUNKED = b"\r\ntransfer-encoding: chunked\r\n"

# Where the first piece starts in what arrived so far, searched from ``start``: (found, where
# to search from next time).
FirstPiece = Callable[[bytearray, int], tuple[bool, int]]


def _first_delta(received: bytearray, start: int) -> tuple[bool, int]:
    if received.find(_DELTA_DATA, start) >= 0:
        return True, start
    return False, max(0, len(received) - len(_DELTA_DATA) + 1)


def _first_content(received: bytearray, start: int) -> tuple[bool, int]:
    """A chunk whose content is not empty (the first, the role's, has empty content)."""
    at = received.find(_CONTENT, start)
    while at >= 0:
        after = at + len(_CONTENT)
        if after >= len(received):
            return False, at  # undecided until the next byte arrives
        if received[after] != ord('"'):
            return True, at
        at = received.find(_CONTENT, after)
    return False, max(0, len(received) - len(_CONTENT) + 1)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one streamed response at a time, taken in as it
    arrives by the protocol's callback: nothing wakes a task per event, and the time of the
    first piece is taken in the callback that brings it. (aiohttp's client cost this process
    about 2 ms of CPU per stream, and the model server shares its CPU: their own delays
    landed in the times measured.) The relays' streams are chunked: a response ends with its
    last, empty chunk."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.first_at: float | None = None
        self._received = bytearray()
        self._first_piece: FirstPiece = _first_delta
        self._searched = 0
        self._ended: asyncio.Future[bytes] | None = None
        # The longest wait between reads that brought deltas, when asked for (timing_gaps).
        self._timing_gaps = False
        self._deltas = 0
        self._last_delta_at: float | None = None
        self.longest_gap = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # a TCP connection's

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        if self.first_at is None:
            found, self._searched = self._first_piece(received, self._searched)
            if found:
                self.first_at = time.perf_counter()
        if self._timing_gaps and (deltas := received.count(_DELTA)) > self._deltas:
            now = time.perf_counter()
            if self._last_delta_at is not None:
                self.longest_gap = max(self.longest_gap, now - self._last_delta_at)
            self._last_delta_at, self._deltas = now, deltas
        ended = self._ended
        if ended is not None and not ended.done() and _complete(received):
            ended.set_result(bytes(received))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._ended is not None and not self._ended.done():
            self._ended.set_exception(exc or ConnectionResetError("closed before the end"))

    async def exchange(
        self, request: bytes, first_piece: FirstPiece, *, timing_gaps: bool = False
    ) -> bytes:
        """Send ``request``; the whole response once it has arrived. ``timing_gaps``: keep
        the longest wait between deltas (a few streams: it counts them at every read)."""
        assert self.transport is not None
        self._received = bytearray()
        self._first_piece, self._searched, self.first_at = first_piece, 0, None
        self._timing_gaps, self._deltas, self._last_delta_at = timing_gaps, 0, None
        self.longest_gap = 0.0
        self._ended = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._ended

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _complete(received: bytearray) -> bool:
    """Whether a response has all arrived: a chunked stream's last chunk, or any other
    response's head (it is not read further: its connection is closed, and a 200 that is not
    a chunked stream ends without its events)."""
    head_end = received.find(_HEAD_END)
    if head_end < 0:
        return False
    if received.startswith(b"HTTP/1.1 200 ") and _CHUNKED in received[: head_end + 2].lower():
        return received.endswith(_LAST_CHUNK)
    return True


class Pool:
    """Idle connections to one server, reused as aiohttp's pool would: a stream takes one
    or opens a new one, and gives it back when its response ended."""

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.path = parsed.path or "/"
        self._idle: list[_Connection] = []

    async def take(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.transport is not None:
                return connection
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port
        )
        return connection

    def give_back(self, connection: _Connection) -> None:
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def request(self, body: dict[str, Any], accept: str) -> bytes:
        payload = orjson.dumps(body)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAccept: {accept}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload


async def _exchange(
    pool: Pool,
    request: bytes,
    first_piece: FirstPiece,
    timeout_s: float,
    stream: Stream,
    *,
    timing_gaps: bool = False,
) -> bytes | None:
    """One request on a connection of ``pool``: the whole response, the stream's first time
    recorded (from its ``started``), or None with the stream's error."""
    connection: _Connection | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            connection = await pool.take()
            response = await connection.exchange(request, first_piece, timing_gaps=timing_gaps)
    except OSError as exc:  # TimeoutError included
        stream.error = _describe(exc)
        if connection is not None:
            connection.close()
            if connection.first_at is not None:  # it failed after its first piece
                stream.first_s = connection.first_at - started
        return None
    if connection.first_at is not None:
        stream.first_s = connection.first_at - started
    if timing_gaps:
        stream.longest_gap_s = connection.longest_gap
    status = response[9:12].decode(errors="replace")
    if status != "200":
        stream.error = f"status {status}"
        connection.close()
        return None
    if response.endswith(_LAST_CHUNK):
        pool.give_back(connection)
    else:  # not a chunked stream: what is left of it is not read
        connection.close()
    return response


async def service_stream(
    pool: Pool, conversation: str, opened: OpenCount, timeout_s: float, *, running: bool = False
) -> Stream:
    """One streamed chat: the time to its first delta, then all of it, once it ended;
    ``running``: one already running when the others start, whose longest wait between
    deltas is kept."""
    stream = Stream()
    body = {"message": f"bench stream {conversation}", "conversation_id": conversation}
    request = pool.request(body, "text/event-stream")
    started = time.perf_counter()
    opened.enter()
    try:
        response = await _exchange(
            pool, request, _first_delta, timeout_s, stream, timing_gaps=running
        )
    finally:
        opened.leave()
        stream.total_s = time.perf_counter() - started
    if response is None:
        return stream
    if stream.first_s is not None:
        stream.model_s = _stamp(_line_after(response, _DELTA_DATA), lambda data: data["text"])
    stream.events = response.count(_DELTA)
    stream.completed = _DONE in response
    if _ERROR in response:
        stream.error = "error event"
    elif not stream.completed:
        last = response[response.rfind(b"event: ") :].split(b"\n", 1)[0]
        stream.error = f"ended without done after {last[7:].decode() or 'no event'}"
    return stream


async def direct_stream(pool: Pool, number: int, model: str, timeout_s: float) -> Stream:
    """One streamed completion straight from the model server, as the service asks for it,
    read as :func:`service_stream` reads."""
    stream = Stream()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"bench direct {number}"}],
        "stream": True,
    }
    request = pool.request(body, "text/event-stream")
    started = time.perf_counter()
    try:
        response = await _exchange(pool, request, _first_content, timeout_s, stream)
    finally:
        stream.total_s = time.perf_counter() - started
    if response is None:
        return stream
    stream.events = response.count(_CONTENT) - response.count(_EMPTY_CONTENT)
    stream.model_s = _first_stamp(response)
    stream.completed = _END in response
    if not stream.completed:
        stream.error = "ended without [DONE]"
    return stream


def _first_stamp(response: bytes) -> float | None:
    """The stamp of the first chunk with content in a direct stream's response."""
    found, at = _first_content(bytearray(response), 0)
    if not found:
        return None
    line = response[response.rfind(b"data: ", 0, at) + 6 : response.find(b"\n", at)]
    return _stamp(line, lambda data: data["choices"][0]["delta"]["content"])


def _describe(exc: BaseException) -> str:
    """An error's kind, with the OS's reason where there is one (reset, refused, ...)."""
    reason = getattr(exc, "strerror", None) or (str(exc) if isinstance(exc, OSError) else "")
    return f"{type(exc).__name__}: {reason}"[:120] if reason else type(exc).__name__


async def _at(start: float, offset: float) -> None:
    if (delay := start + offset - time.perf_counter()) > 0:
        await asyncio.sleep(delay)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """All the streams of one run, service and direct interleaved over the ramp."""
    opened = OpenCount()
    # No limit on connections: every stream open at once holds its own, as separate users'
    # would; one that ended is reused by a later stream.
    service = Pool(f"{args.url}/chat/message")
    direct = Pool(f"{args.model_url}/v1/chat/completions")
    try:
        # Streams already running first, started over one ramp; the measured ones over the next.
        begin = time.perf_counter()
        start = begin + (args.ramp if args.running else 0.0)

        async def one_running(number: int) -> Stream:
            await _at(begin, args.ramp * number / args.running)
            conversation = f"{args.conversation_prefix}running-{number}"
            return await service_stream(service, conversation, opened, args.timeout, running=True)

        async def one_service(number: int) -> Stream:
            await _at(start, args.ramp * number / args.streams)
            conversation = f"{args.conversation_prefix}{number}"
            return await service_stream(service, conversation, opened, args.timeout)

        async def one_direct(number: int) -> Stream:
            await _at(start, args.ramp * (number + 0.5) / max(1, args.direct))
            return await direct_stream(direct, number, args.model, args.timeout)

        cpu_before = _own_cpu()
        # No collection pauses in the middle of the times measured: a run is bounded, and the
        # collector is given back as it was found when it ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            running_runs = [asyncio.create_task(one_running(n)) for n in range(args.running)]
            service_runs = [asyncio.create_task(one_service(n)) for n in range(args.streams)]
            direct_runs = [asyncio.create_task(one_direct(n)) for n in range(args.direct)]
            streams = await asyncio.gather(*service_runs)
            wall_s = time.perf_counter() - start
            directs = await asyncio.gather(*direct_runs)
            running = await asyncio.gather(*running_runs)
        finally:
            if collecting:
                gc.enable()
        cpu_s = _own_cpu() - cpu_before
    finally:
        service.close()
        direct.close()
    summary = summarise(list(streams), list(directs), wall_s, opened.peak, cpu_s, args.ramp)
    if running:
        summary["running"] = running_summary(running)
    return summary


def running_summary(running: Sequence[Stream]) -> dict[str, Any]:
    """The streams already running when the others started: how many completed, and their
    longest waits between deltas (at best the model's own interval between chunks)."""
    return {
        "streams": len(running),
        "completed": sum(s.completed for s in running),
        "longest_gap_ms": percentiles_ms(
            [s.longest_gap_s for s in running if s.completed and s.longest_gap_s is not None]
        ),
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles_ms(values: Sequence[float]) -> dict[str, float] | None:
    """Nearest-rank percentiles in milliseconds (p100 is the maximum)."""
    if not values:
        return None
    ordered = sorted(values)
    result = {}
    for p in PERCENTILES:
        rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
        result["max" if p == 100 else f"p{p:g}"] = round(ordered[rank - 1] * 1000, 3)
    return result


def _errors(streams: Sequence[Stream]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for stream in streams:
        if stream.error is not None:
            errors[stream.error] = errors.get(stream.error, 0) + 1
    return errors


def added_s(streams: Sequence[Stream]) -> list[float]:
    """Per stream with a stamped first piece: its time to it minus the model server's own."""
    return [
        s.first_s - s.model_s for s in streams if s.first_s is not None and s.model_s is not None
    ]


def summarise(
    streams: list[Stream],
    directs: list[Stream],
    wall_s: float,
    peak_open: int,
    cpu_s: float,
    ramp_s: float,
) -> dict[str, Any]:
    """What the bench reports; TTFT percentiles are over the streams that had a first event."""
    return {
        "streams": len(streams),
        "completed": sum(s.completed for s in streams),
        "errors": _errors(streams),
        "deltas": sum(s.events for s in streams),
        "ttft_ms": percentiles_ms([s.first_s for s in streams if s.first_s is not None]),
        "added_ms": percentiles_ms(added_s(streams)),
        "stamped": len(added_s(streams)),
        "total_ms": percentiles_ms([s.total_s for s in streams if s.completed and s.total_s]),
        "wall_s": round(wall_s, 3),
        "ramp_s": ramp_s,
        "peak_open": peak_open,
        "client_cpu_s": round(cpu_s, 3),
        "direct": {
            "streams": len(directs),
            "completed": sum(s.completed for s in directs),
            "errors": _errors(directs),
            "chunks": sum(s.events for s in directs),
            "ttft_ms": percentiles_ms([s.first_s for s in directs if s.first_s is not None]),
            "added_ms": percentiles_ms(added_s(directs)),
            "stamped": len(added_s(directs)),
            "total_ms": percentiles_ms([s.total_s for s in directs if s.completed and s.total_s]),
        },
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model-url", required=True, help="the model server (no /v1)")
    parser.add_argument("--model", default="gpt-test", help="model name for the direct streams")
    parser.add_argument("--streams", type=int, default=1000, help="default %(default)s")
    parser.add_argument("--direct", type=int, default=100, help="default %(default)s")
    parser.add_argument(
        "--ramp", type=float, default=1.0, help="seconds over which starts are spread"
    )
    parser.add_argument(
        "--running",
        type=int,
        default=0,
        help="streams started over one ramp before the others, their longest wait between "
        "deltas measured as the others start (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per stream, seconds")
    parser.add_argument(
        "--conversation-prefix",
        default="bench-stream-",
        help="stream n is a message in conversation <prefix><n> (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.streams < 1 or min(args.direct, args.running, args.ramp) < 0 or args.timeout <= 0:
        parser.error("--streams must be positive, --direct, --running and --ramp not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # uvloop where installed, as the service chooses (the ``speedups`` extra): on asyncio's own
    # loop each read cost this client about 20 µs of Python before its callback ran, 50 times
    # a stream, on the CPU it shares with the model server.
    with asyncio.Runner(loop_factory=choose_event_loop("auto").new_loop) as runner:
        summary = runner.run(run(args))
    print(MARKER + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
