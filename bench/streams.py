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

It prints one line, ``BENCH_STREAMS {json}``, with the summary (percentiles, counts, its own
CPU time); the bench reads it (bench/stream_scenario.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

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


async def service_stream(
    session: aiohttp.ClientSession, url: str, conversation: str, opened: OpenCount
) -> Stream:
    """One streamed chat; every event is read (the relay's cost is per event)."""
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
            event = b""
            async for line in response.content:
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                    if event == b"delta":
                        stream.events += 1
                        if stream.first_s is None:
                            stream.first_s = time.perf_counter() - started
                    elif event == b"done":
                        stream.completed = True
                    elif event == b"error":
                        stream.error = "error event"
            if not stream.completed and stream.error is None:
                stream.error = f"ended without done after {event.decode() or 'no event'}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        stream.error = _describe(exc)
    finally:
        opened.leave()
        stream.total_s = time.perf_counter() - started
    return stream


async def direct_stream(
    session: aiohttp.ClientSession, url: str, number: int, model: str
) -> Stream:
    """One streamed completion straight from the model server, as the service asks for it."""
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
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                if line.startswith(b"data: [DONE]"):
                    stream.completed = True
                elif _CONTENT in line and _EMPTY_CONTENT not in line:
                    stream.events += 1
                    if stream.first_s is None:
                        stream.first_s = time.perf_counter() - started
            if not stream.completed:
                stream.error = "ended without [DONE]"
    except (aiohttp.ClientError, TimeoutError) as exc:
        stream.error = _describe(exc)
    finally:
        stream.total_s = time.perf_counter() - started
    return stream


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
