"""A live OTLP/HTTP receiver for scenario (b), run as its own process on the load CPU.

It is the tests' ``OtlpHttpReceiver`` (a real aiohttp server decoding the exporter's
protobuf), counting spans instead of keeping them: at 100% sampling a run produces
hundreds of thousands. ``python -m bench.otlp_sink`` prints ``endpoint <url>``, serves
until SIGTERM, then prints ``stats {"export_requests": n, "spans": m}``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.processes import stop
from tests.support.otlp import OtlpHttpReceiver


class CountingReceiver(OtlpHttpReceiver):
    """Decodes every export request (as a collector would) and counts its spans."""

    def __init__(self) -> None:
        super().__init__()
        self.span_count = 0

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
        with self._lock:
            self.requests += 1
            self.span_count += spans


def main() -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    receiver = CountingReceiver()
    with receiver:
        print(f"endpoint {receiver.endpoint}", flush=True)
        while not stopped.wait(0.2):
            pass
        stats = {"export_requests": receiver.requests, "spans": receiver.span_count}
    print(f"stats {json.dumps(stats)}", flush=True)
    return 0


@dataclass(slots=True)
class Sink:
    """The parent's handle: the endpoint to export to, and the counts once it has stopped."""

    endpoint: str
    stats: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def running_sink(cpu_prefix: list[str], cwd: Path) -> Iterator[Sink]:
    process = subprocess.Popen(
        [*cpu_prefix, sys.executable, "-m", "bench.otlp_sink"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline().split()
        if len(first) != 2 or first[0] != "endpoint":
            raise RuntimeError("the OTLP sink did not start")
        sink = Sink(first[1])
        yield sink
    finally:
        stop(process)
    with process.stdout:
        for line in process.stdout:
            if line.startswith("stats "):
                sink.stats = {key: int(value) for key, value in json.loads(line[6:]).items()}


if __name__ == "__main__":
    sys.exit(main())
