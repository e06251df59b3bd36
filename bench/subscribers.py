"""``python -m bench.subscribers``: the idle live-update subscriptions of scenario (h).

It opens ``--count`` ``GET /chat/events`` streams, each following a conversation of its own
(as many users with the page open and nothing being said), at most ``--parallel`` of them
being opened at once, and prints ``BENCH_SUBSCRIBERS_READY {json}`` once every one has its
response headers (or failed). It then holds them, reading whatever comes (the keep-alive
comments every 15 s), until its standard input closes, and prints ``BENCH_SUBSCRIBERS
{json}``: how many stayed open to the end, how many ended or failed early, and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import raise_nofile_limit, rss_bytes

READY = "BENCH_SUBSCRIBERS_READY "
MARKER = "BENCH_SUBSCRIBERS "
# Bounds the wait for one stream's response headers, and so the opening of all of them.
OPEN_TIMEOUT_S = 60.0


class Subscriptions:
    """The streams' outcomes, counted as they happen."""

    def __init__(self) -> None:
        self.open = 0
        self.failed: Counter[str] = Counter()  # never opened, by reason
        self.ended: Counter[str] = Counter()  # opened, then ended before the end, by reason
        self.bytes_read = 0


async def subscribe(
    session: aiohttp.ClientSession,
    url: str,
    conversation: str,
    slots: asyncio.Semaphore,
    counts: Subscriptions,
    opened: asyncio.Event,
) -> None:
    """One subscription: opened under ``slots``, then read until it ends or is cancelled."""
    try:
        async with slots, asyncio.timeout(OPEN_TIMEOUT_S):
            response = await session.get(url, params={"conversation_id": conversation})
        if response.status != 200:
            counts.failed[f"status {response.status}"] += 1
            response.release()
            return
    except (aiohttp.ClientError, OSError) as exc:
        counts.failed[type(exc).__name__] += 1
        return
    finally:
        opened.set()
    counts.open += 1
    try:
        async for block in response.content.iter_any():
            counts.bytes_read += len(block)
        counts.ended["ended by the server"] += 1
    except (aiohttp.ClientError, OSError) as exc:
        counts.ended[type(exc).__name__] += 1
    finally:
        counts.open -= 1
        response.release()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = Subscriptions()
    slots = asyncio.Semaphore(args.parallel)
    url = f"{args.url}/chat/events"
    started = time.perf_counter()
    # No read timeout: the streams are idle by design.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        events = [asyncio.Event() for _ in range(args.count)]
        tasks = [
            asyncio.create_task(
                subscribe(session, url, f"{args.prefix}{n}", slots, counts, events[n])
            )
            for n in range(args.count)
        ]
        for event in events:
            await event.wait()
        opening_s = time.perf_counter() - started
        opened = args.count - sum(counts.failed.values())
        ready = {
            "open": counts.open,
            "opened": opened,
            "failed": dict(counts.failed),
            "opening_s": opening_s,
        }
        print(READY + json.dumps(ready), flush=True)
        # Hold them until the bench closes our standard input.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        held = counts.open
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "count": args.count,
        "opened": opened,
        "open_at_end": held,
        "failed": dict(counts.failed),
        "ended_early": dict(counts.ended),
        "opening_s": round(opening_s, 3),
        "bytes_read": counts.bytes_read,
    }


@contextlib.contextmanager
def held_subscriptions(
    url: str, count: int, cpu_prefix: list[str], repo: Path, server_pid: int
) -> Iterator[dict[str, Any]]:
    """``count`` idle subscriptions to the service at ``url``, held by a process of their
    own (on the load CPU) for the duration of the block. The figures it yields are the
    opening's at once, the service's memory for them, and, once the block is left, what
    held to the end (under ``held``)."""
    raise_nofile_limit(count)
    before = rss_bytes(server_pid)
    argv = [*cpu_prefix, sys.executable, "-m", "bench.subscribers"]
    process = subprocess.Popen(
        [*argv, f"--url={url}", f"--count={count}"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    try:
        figures: dict[str, Any] = _marked_line(process, READY)
        after = rss_bytes(server_pid)
        if before is not None and after is not None and (opened := figures["opened"]):
            figures["service_rss_before_mb"] = round(before / 2**20, 1)
            figures["service_rss_held_mb"] = round(after / 2**20, 1)
            figures["bytes_per_subscription"] = round((after - before) / opened)
        yield figures
        process.stdin.close()
        figures["held"] = _marked_line(process, MARKER)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _marked_line(process: subprocess.Popen[str], marker: str) -> dict[str, Any]:
    """The JSON after ``marker`` on the next line of ``process``'s output that has it."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(marker):
            figures: dict[str, Any] = json.loads(line[len(marker) :])
            return figures
    errors = process.stderr.read()[-2000:] if process.stderr is not None else ""
    raise RuntimeError(f"bench.subscribers ended without {marker.strip()}:\n{errors}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscribers",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=10_000, help="default %(default)s")
    parser.add_argument(
        "--parallel", type=int, default=100, help="opened at once at most (%(default)s)"
    )
    parser.add_argument("--prefix", default="bench-idle-", help="conversation id prefix")
    args = parser.parse_args(argv)
    if args.count < 1 or args.parallel < 1:
        parser.error("--count and --parallel must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    summary = asyncio.run(run(parse_args(argv)))
    print(MARKER + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
