"""``python -m bench.streams``: the load generator of scenario (g), many streamed chats at once.

wrk cannot read a server-sent event stream event by event, so this is an asyncio + aiohttp
client of our own, run as its own process on the load CPU (as wrk is). It opens ``--streams``
streamed chats (``POST /chat/message`` with ``Accept: text/event-stream``, each a new message
in its own conversation, so no conversation queues behind another), their starts spread evenly
over ``--ramp`` seconds, reads every event, and records per stream whether it ended with
``done``, the time to its first ``delta`` event and its total duration.

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
from typing import Any

import aiohttp
import orjson

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


def _data_after(events: bytes, marker: bytes) -> bytes:
    """The rest of the line after the first ``marker`` in ``events`` (which holds it)."""
    start = events.index(marker) + len(marker)
    end = events.find(b"\n", start)
    return events[start:] if end < 0 else events[start:end]


# What the relays write for each event (event_stream.py; bench/reference_relay.py).
_DELTA, _DONE, _ERROR = b"event: delta\n", b"event: done\n", b"event: error\n"
_DELTA_DATA = _DELTA + b"data: "
_END = b"data: [DONE]"


async def service_stream(
    session: aiohttp.ClientSession, url: str, conversation: str, opened: OpenCount
) -> Stream:
    """One streamed chat: its first delta is waited for and timed as it arrives; the rest
    of the stream, once it has all arrived (:func:`_rest`)."""
    stream = Stream()
    body = {"message": f"bench stream {conversation}", "conversation_id": conversation}
    started = time.perf_counter()
    opened.enter()
    try:
        async with session.post(
            url, json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status != 200:
                stream.error = f"status {response.status}"
                await response.read()
                return stream
            pending = events = b""
            async for block in response.content.iter_any():
                events, _, pending = (pending + block).rpartition(b"\n\n")
                if _DELTA_DATA in events:
                    stream.first_s = time.perf_counter() - started
                    data = _data_after(events, _DELTA_DATA)
                    stream.model_s = _stamp(data, lambda data: data["text"])
                    break
                if _ERROR in events or _DONE in events:  # a reply that ends before a delta
                    break
            events = events + b"\n\n" + await _rest(response, pending)
            stream.events = events.count(_DELTA)
            stream.completed = _DONE in events
            if _ERROR in events:
                stream.error = "error event"
            elif not stream.completed:
                last = events[events.rfind(b"event: ") :].split(b"\n", 1)[0]
                stream.error = f"ended without done after {last[7:].decode() or 'no event'}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        stream.error = _describe(exc)
    finally:
        opened.leave()
        stream.total_s = time.perf_counter() - started
    return stream


async def _rest(response: aiohttp.ClientResponse, pending: bytes) -> bytes:
    """What is left of a response's body, once it has all arrived. aiohttp buffers what
    arrives meanwhile without waking the reader, so the client spends next to nothing per
    event: it shares the load CPU with the model server, and its own delays would land in
    the times it measures. (A stream is a few KiB, well under the reader's buffer limit,
    past which aiohttp would stop reading the socket.) The relay writes each event as it
    comes whatever the client does: the kernel takes them into the socket's buffers."""
    await response.content.wait_eof()
    return pending + response.content.read_nowait()


async def direct_stream(
    session: aiohttp.ClientSession, url: str, number: int, model: str
) -> Stream:
    """One streamed completion straight from the model server, as the service asks for it,
    read as :func:`service_stream` reads."""
    stream = Stream()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"bench direct {number}"}],
        "stream": True,
    }
    started = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            if response.status != 200:
                stream.error = f"status {response.status}"
                await response.read()
                return stream
            pending = events = b""
            async for block in response.content.iter_any():
                events, _, pending = (pending + block).rpartition(b"\n\n")
                if events.count(_CONTENT) > events.count(_EMPTY_CONTENT):
                    stream.first_s = time.perf_counter() - started
                    stream.model_s = _first_stamp(events)
                    break
                if _END in events:
                    break
            events = events + b"\n\n" + await _rest(response, pending)
            stream.events = events.count(_CONTENT) - events.count(_EMPTY_CONTENT)
            stream.completed = _END in events
            if not stream.completed:
                stream.error = "ended without [DONE]"
    except (aiohttp.ClientError, TimeoutError) as exc:
        stream.error = _describe(exc)
    finally:
        stream.total_s = time.perf_counter() - started
    return stream


def _first_stamp(events: bytes) -> float | None:
    """The stamp of the first chunk with content among ``events`` (some have one)."""
    for event in events.split(b"\n\n"):
        if _CONTENT in event and _EMPTY_CONTENT not in event:
            data = event.removeprefix(b"data: ")
            return _stamp(data, lambda data: data["choices"][0]["delta"]["content"])
    return None


def _describe(exc: BaseException) -> str:
    """An error's kind, with the OS's reason where there is one (reset, refused, ...)."""
    reason = getattr(exc, "strerror", None) or (str(exc) if isinstance(exc, OSError) else "")
    return f"{type(exc).__name__}: {reason}"[:120] if reason else type(exc).__name__


async def _at(start: float, offset: float) -> None:
    if (delay := start + offset - time.perf_counter()) > 0:
        await asyncio.sleep(delay)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """All the streams of one run, service and direct interleaved over the ramp."""
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    opened = OpenCount()
    # No connection limit: every stream holds its own connection, as separate users would.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as service,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as direct,
    ):
        service_url = f"{args.url}/chat/message"
        direct_url = f"{args.model_url}/v1/chat/completions"
        start = time.perf_counter()

        async def one_service(number: int) -> Stream:
            await _at(start, args.ramp * number / args.streams)
            conversation = f"{args.conversation_prefix}{number}"
            return await service_stream(service, service_url, conversation, opened)

        async def one_direct(number: int) -> Stream:
            await _at(start, args.ramp * (number + 0.5) / max(1, args.direct))
            return await direct_stream(direct, direct_url, number, args.model)

        cpu_before = _own_cpu()
        # No collection pauses in the middle of the times measured: the run is bounded, and
        # what its cycles hold is freed when the process exits.
        gc.disable()
        service_runs = [asyncio.create_task(one_service(n)) for n in range(args.streams)]
        direct_runs = [asyncio.create_task(one_direct(n)) for n in range(args.direct)]
        streams = await asyncio.gather(*service_runs)
        wall_s = time.perf_counter() - start
        directs = await asyncio.gather(*direct_runs)
        cpu_s = _own_cpu() - cpu_before
    return summarise(list(streams), list(directs), wall_s, opened.peak, cpu_s, args.ramp)


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
    parser.add_argument("--timeout", type=float, default=60.0, help="per stream, seconds")
    parser.add_argument(
        "--conversation-prefix",
        default="bench-stream-",
        help="stream n is a message in conversation <prefix><n> (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.streams < 1 or args.direct < 0 or args.ramp < 0 or args.timeout <= 0:
        parser.error("--streams must be positive, --direct and --ramp not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    summary = asyncio.run(run(args))
    print(MARKER + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
