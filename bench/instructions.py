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
load. ``g`` counts the service relaying a streamed reply of the benchmark's model server
(scenario (g)'s, running beside the load), ``r`` the bare relay of bench/reference_relay.py
under the same streams: each twice, with replies of 1 and of 21 pieces, which gives the
instructions per piece (the difference over 20) and per stream set-up (the rest).
``--python`` and ``--source`` count another checkout of the service (an earlier
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
from bench.stream_scenario import MODEL_SERVER, model_settings, set_reply_chunks

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


async def post_messages(
    url: str, requests: int, connections: int, start: int = 0, *, streamed: bool = False
) -> None:
    """Exactly ``requests`` POSTs over ``connections`` keep-alive connections, each read to
    its end (``streamed``: asking for server-sent events); raise on any answer but 200, or a
    stream that does not end with its ``done`` event (a count over failures would be a
    count of something else)."""
    sent = start
    end = start + requests
    headers = {"Content-Type": "application/json"}
    if streamed:
        headers["Accept"] = "text/event-stream"

    async def one_connection(session: aiohttp.ClientSession, connection: int) -> None:
        nonlocal sent
        while sent < end:
            sent += 1
            async with session.post(url, data=message_body(connection, sent), headers=headers) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"POST {url} answered {r.status}")
                if streamed and b"event: done\n" not in body:
                    raise RuntimeError(f"a stream from {url} ended without its done event")

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
    streamed: bool = False,
) -> Count:
    """Run ``argv`` (a server on ``port``) under callgrind, warm it up, and count what it
    executes for ``requests`` requests (``streamed``: each asking for an event stream)."""
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
    """Scenario (a) or (e): the service, or the bare app, answering POSTs."""
    port = free_port()
    env = base_environment()
    with tempfile.TemporaryDirectory(prefix="bench-instructions-db-") as db:
        if key == "e":
            argv = [sys.executable, "-m", "bench.reference_app", "--port", str(port)]
            cwd, ready = BENCH_DIR.parent, "/readyz"
        else:
            argv = [args.python, "-m", "chat_service"]
            env |= service_settings(port, Path(db))
            cwd, ready = args.source, "/healthz"
        return count(
            argv,
            env=env,
            cwd=cwd,
            ready_path=ready,
            port=port,
            requests=args.requests,
            warmup=args.warmup,
            connections=args.connections,
        )


def service_settings(port: int, db: Path) -> dict[str, str]:
    return SERVICE_DEFAULTS | {
        "CHAT_HOST": "127.0.0.1",
        "CHAT_PORT": str(port),
        "CHAT_DB_PATH": str(db / "chat.sqlite3"),
        "OTEL_TRACES_EXPORTER": "none",
    }


@dataclass(frozen=True, slots=True)
class RelayCounts:
    """A relay's counts at replies of ``FEW_PIECES`` and of ``MANY_PIECES`` pieces."""

    few: Count
    many: Count

    @property
    def per_piece(self) -> float:
        return (self.many.per_request - self.few.per_request) / (MANY_PIECES - FEW_PIECES)

    @property
    def per_stream_set_up(self) -> float:
        """A stream's instructions but its pieces'."""
        return self.few.per_request - FEW_PIECES * self.per_piece

    def summary(self) -> dict[str, Any]:
        return {
            "streams": self.few.requests,
            f"per_stream_of_{FEW_PIECES}_piece": round(self.few.per_request),
            f"per_stream_of_{MANY_PIECES}_pieces": round(self.many.per_request),
            "per_piece": round(self.per_piece),
            "per_stream_set_up": round(self.per_stream_set_up),
            "other_threads_per_stream": round(
                self.few.per_request - self.few.main_thread_per_request
            ),
        }


FEW_PIECES = 1
MANY_PIECES = 21
# Between the model server's pieces: long enough that each arrives in a read of its own
# even under callgrind, as the 50 ms of scenario (g) make them.
PIECE_DELAY_S = 0.01


def count_relay(key: str, args: argparse.Namespace) -> RelayCounts:
    """Scenario (g)'s relays, the service (``g``) or the bare one (``r``), relaying the
    benchmark's model server (on the load CPU) to streamed POSTs."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-instr-g-")))
        model_port = free_port()
        model_url = f"http://127.0.0.1:{model_port}"
        stack.enter_context(
            running_server(
                [*MODEL_SERVER, "--port", str(model_port)],
                env=base_environment(),
                cpu_prefix=plan_pinning(True).load(),
                ready_url=f"{model_url}/health",
                output=tmp / "model.log",
                cwd=BENCH_DIR.parent,
            )
        )
        counts = []
        for pieces in (FEW_PIECES, MANY_PIECES):
            set_reply_chunks(model_url, pieces, PIECE_DELAY_S, stamp=False)
            port = free_port()
            env = base_environment()
            if key == "r":
                argv = [sys.executable, "-m", "bench.reference_relay", "--port", str(port)]
                argv += ["--model-url", f"{model_url}/v1"]
                cwd, ready = BENCH_DIR.parent, "/readyz"
            else:
                argv = [args.python, "-m", "chat_service"]
                # A database of its own: the same conversations in both runs would give the
                # second run context to read and send, counted as its pieces' cost.
                database = tmp / f"db-{pieces}"
                database.mkdir()
                env |= service_settings(port, database) | model_settings(model_url)
                cwd, ready = args.source, "/healthz"
            counts.append(
                count(
                    argv,
                    env=env,
                    cwd=cwd,
                    ready_path=ready,
                    port=port,
                    requests=args.streams,
                    warmup=args.streams // 2,
                    connections=args.connections,
                    streamed=True,
                )
            )
        return RelayCounts(*counts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--scenarios",
        default="a,e",
        help="a (the service), e (the bare app), g (the service relaying streams), r (the "
        "bare relay); default %(default)s",
    )
    parser.add_argument("--requests", type=int, default=2_000, help="counted; default %(default)s")
    parser.add_argument("--warmup", type=int, default=1_500, help="before; default %(default)s")
    parser.add_argument("--connections", type=int, default=16, help="default %(default)s")
    parser.add_argument(
        "--streams", type=int, default=400, help="counted, of (g) and (r); default %(default)s"
    )
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
    if unknown := set(args.scenarios) - {"a", "e", "g", "r"}:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (a, e, g and r are counted)")
    if min(args.requests, args.connections, args.streams) < 1 or args.warmup < 0:
        parser.error(
            "--requests, --streams and --connections must be positive, --warmup not negative"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    for key in args.scenarios:
        counted = count_relay(key, args) if key in ("g", "r") else count_scenario(key, args)
        results[key] = counted.summary()
        print(f"({key}) {json.dumps(results[key])}", flush=True)
    if "a" in results and "e" in results:
        ratio = results["a"]["instructions_per_request"] / results["e"]["instructions_per_request"]
        print(f"(a) executes {ratio:.2f}x the instructions of (e) per request")
    if "g" in results and "r" in results:
        service, bare = results["g"], results["r"]
        piece = service["per_piece"] / bare["per_piece"]
        set_up = service["per_stream_set_up"] / bare["per_stream_set_up"]
        print(
            f"(g) executes {piece:.2f}x the bare relay's instructions per piece, "
            f"{set_up:.2f}x per stream set-up"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
