"""``python -m bench.instructions``: instructions the server executes per request, by thread.

CPU time per request on a shared VM moves by 10% from one run to the next, which hides
every change worth a few percent. Instructions do not: the server runs under valgrind's
callgrind, which counts every instruction executed in user space, and the count per request
repeats to about 0.1%. Counting starts after a warm-up and stops after a fixed number of
requests, so imports, start-up and shutdown are not in it. What it leaves out: time in the
kernel (system calls, fdatasync) and the cost of cache misses, so it complements the CPU
figures of ``make bench`` and does not replace them.

The load is (a)'s (bench/post.lua): POST /chat/message with a distinct ~100-character
message, round-robin over 1,024 conversations, here from a fixed number of keep-alive
connections. ``--scenarios e`` counts the bare aiohttp app of scenario (e) under the same
load. ``--python`` and ``--source`` count another checkout of the service (an earlier
commit in a virtualenv of its own, say), so "before" and "after" are measured on one
machine in one sitting::

    python -m bench.instructions --scenarios a,e
    python -m bench.instructions --scenarios a --python /tmp/old/venv/bin/python \\
        --source /tmp/old/checkout

Needs valgrind (Debian: ``apt-get install valgrind``). Each scenario takes about a minute:
the server runs some 50 times slower under callgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import base_environment
from bench.processes import free_port, plan_pinning, running_server
from bench.runner import SERVICE_DEFAULTS

BENCH_DIR = Path(__file__).resolve().parent
CONVERSATIONS = 1_024  # as bench/post.lua
FILLER = "lorem ipsum " * 8
# Python under callgrind starts some 50 times slower than without.
READY_TIMEOUT_S = 300.0
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)
# callgrind names a dump per thread <file>.<dump>-<thread>, thread 01 the main thread.
_DUMP = re.compile(r"\.(\d+)-(\d+)$")


@dataclass(frozen=True, slots=True)
class Count:
    """Instructions counted over ``requests`` requests, by thread (1: the main thread)."""

    requests: int
    threads: dict[int, int]

    @property
    def per_request(self) -> float:
        return sum(self.threads.values()) / self.requests

    @property
    def main_thread_per_request(self) -> float:
        return self.threads.get(1, 0) / self.requests

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "instructions_per_request": round(self.per_request),
            "main_thread_per_request": round(self.main_thread_per_request),
            "other_threads_per_request": round(self.per_request - self.main_thread_per_request),
        }


def thread_totals(directory: Path, stem: str) -> dict[int, int]:
    """Instructions per thread in the dumps ``callgrind_control --dump`` wrote there (files
    ``<stem>.<dump>-<thread>``); the dump valgrind writes at exit (no ``.<dump>``) holds
    what ran after counting stopped, and is left out."""
    threads: dict[int, int] = {}
    for path in directory.glob(f"{stem}.*"):
        name = _DUMP.search(path.name)
        if name is None:
            continue
        found = _TOTALS.search(path.read_text(errors="replace"))
        if found is None:
            raise ValueError(f"{path.name}: no totals line; not a callgrind dump?")
        thread = int(name.group(2))
        threads[thread] = threads.get(thread, 0) + int(found.group(1))
    if not threads:
        raise ValueError(f"no callgrind dump named {stem}.<n>-<thread> in {directory}")
    return threads


def message_body(connection: int, sent: int) -> bytes:
    """The body bench/post.lua sends as request ``sent`` of ``connection``."""
    return json.dumps(
        {
            "message": f"bench {connection}-{sent} {FILLER}",
            "conversation_id": f"bench-{sent % CONVERSATIONS}",
        }
    ).encode()


async def post_messages(url: str, requests: int, connections: int, start: int = 0) -> None:
    """Exactly ``requests`` POSTs over ``connections`` keep-alive connections; raise on any
    answer but 200 (a count over failures would be a count of something else)."""
    sent = start
    end = start + requests
    headers = {"Content-Type": "application/json"}

    async def one_connection(session: aiohttp.ClientSession, connection: int) -> None:
        nonlocal sent
        while sent < end:
            sent += 1
            async with session.post(url, data=message_body(connection, sent), headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"POST {url} answered {r.status}")

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one_connection(session, n) for n in range(connections)))


@contextlib.contextmanager
def load_side(cpus: str | None) -> Iterator[None]:
    """This process (the load) on ``cpus`` for the block, off the server's CPU."""
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def count(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    ready_path: str,
    port: int,
    requests: int,
    warmup: int,
    connections: int,
) -> Count:
    """Run ``argv`` (a server on ``port``) under callgrind, warm it up, and count what it
    executes for ``requests`` requests."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("needs valgrind (Debian: apt-get install valgrind)")
    pinning = plan_pinning(True)
    url = f"http://127.0.0.1:{port}/chat/message"
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={work / 'cg.out'}",
        ]
        with (
            running_server(
                [*valgrind, *argv],
                env=env,
                cpu_prefix=pinning.server(),
                ready_url=f"http://127.0.0.1:{port}{ready_path}",
                output=work / "server.log",
                cwd=cwd,
                ready_timeout_s=READY_TIMEOUT_S,
            ) as server,
            load_side(pinning.load_cpus),
        ):
            asyncio.run(post_messages(url, warmup, connections))
            _control("--instr=on", str(server.pid))
            asyncio.run(post_messages(url, requests, connections, start=warmup))
            _control("--instr=off", str(server.pid))
            _control("--dump", str(server.pid))
        return Count(requests, thread_totals(work, "cg.out"))


def count_scenario(key: str, args: argparse.Namespace) -> Count:
    port = free_port()
    env = base_environment()
    if key == "e":
        argv = [sys.executable, "-m", "bench.reference_app", "--port", str(port)]
        return count(
            argv,
            env=env,
            cwd=BENCH_DIR.parent,
            ready_path="/readyz",
            port=port,
            requests=args.requests,
            warmup=args.warmup,
            connections=args.connections,
        )
    with tempfile.TemporaryDirectory(prefix="bench-instructions-db-") as db:
        env |= SERVICE_DEFAULTS | {
            "CHAT_HOST": "127.0.0.1",
            "CHAT_PORT": str(port),
            "CHAT_DB_PATH": str(Path(db) / "chat.sqlite3"),
            "OTEL_TRACES_EXPORTER": "none",
        }
        return count(
            [args.python, "-m", "chat_service"],
            env=env,
            cwd=args.source,
            ready_path="/healthz",
            port=port,
            requests=args.requests,
            warmup=args.warmup,
            connections=args.connections,
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--scenarios", default="a,e", help="a (the service), e (the bare app); default %(default)s"
    )
    parser.add_argument("--requests", type=int, default=2_000, help="counted; default %(default)s")
    parser.add_argument("--warmup", type=int, default=1_500, help="before; default %(default)s")
    parser.add_argument("--connections", type=int, default=16, help="default %(default)s")
    parser.add_argument(
        "--python", default=sys.executable, help="the service's interpreter (default: this one)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=BENCH_DIR.parent,
        help="the checkout whose chat_service is run (default: this one)",
    )
    args = parser.parse_args(argv)
    args.scenarios = [key.strip() for key in args.scenarios.split(",") if key.strip()]
    if unknown := set(args.scenarios) - {"a", "e"}:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (a and e are counted)")
    if args.requests < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--requests and --connections must be positive, --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = {}
    for key in args.scenarios:
        results[key] = count_scenario(key, args).summary()
        print(f"({key}) {json.dumps(results[key])}", flush=True)
    if "a" in results and "e" in results:
        ratio = results["a"]["instructions_per_request"] / results["e"]["instructions_per_request"]
        print(f"(a) executes {ratio:.2f}x the instructions of (e) per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
