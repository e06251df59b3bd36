"""Run one scenario: seed, start (pinned), warm up, measure, collect, stop."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from bench.common import Options, ScenarioResult, base_environment
from bench.limits import LIMITS_OFF
from bench.otlp_sink import Sink, running_sink
from bench.processes import (
    cpu_seconds,
    free_port,
    http_get,
    peak_rss_bytes,
    running_server,
    wait_idle,
)
from bench.scenarios import Driver, Scenario, Server
from bench.seed import seed_database
from bench.stream_scenario import run_streams_scenario
from bench.subscribers import held_subscriptions
from bench.wrk import POST_SCRIPT, REPORT_SCRIPT, WrkResult, run_wrk
from tests.support.postgres import PostgresServer

# Service-side figures that explain the throughput: (metric sample name, label filter).
# Each is summed over the label sets that contain the filter text.
SCRAPED_METRICS = {
    "commit_batch_size_sum": ("chat_store_commit_batch_size_sum", ""),
    "commit_batch_size_count": ("chat_store_commit_batch_size_count", ""),
    "commit_seconds_sum": (
        "chat_store_operation_duration_seconds_sum",
        'db_operation_name="BATCH INSERT"',
    ),
    "select_seconds_sum": (
        "chat_store_operation_duration_seconds_sum",
        'db_operation_name="SELECT"',
    ),
    "select_count": ("chat_store_operation_duration_seconds_count", 'db_operation_name="SELECT"'),
    "exchanges_stored": ("chat_exchanges_total", 'outcome="stored"'),
    "spans_dropped": ("chat_telemetry_spans_dropped_total", ""),
    "full_gc_seconds_sum": ("chat_gc_pause_seconds_sum", 'generation="2"'),
    "full_gc_count": ("chat_gc_pause_seconds_count", 'generation="2"'),
    "young_gc_seconds_sum": ("chat_gc_pause_seconds_sum", 'generation="0"'),
    "middle_gc_seconds_sum": ("chat_gc_pause_seconds_sum", 'generation="1"'),
    "gc_thaws": ("chat_gc_thaws_total", ""),
}
# Settings every service scenario gets (``--set`` overrides them). The per-caller limits
# are off: wrk's 64 connections come from one address but stand for many users. Loopback is
# a trusted proxy, so that one address may hold more than the quarter of the connections the
# gate allows a peer (api/server.py): (h)'s 10,000 subscriptions come from it.
SERVICE_DEFAULTS = LIMITS_OFF | {"CHAT_TRUSTED_PROXIES": "127.0.0.1/32"}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_settings(items: list[str]) -> dict[str, str]:
    """``VAR=VALUE`` items (CHAT_* or OTEL_* only) as a dict for the service's environment."""
    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith(("CHAT_", "OTEL_")):
            raise ValueError(f"a setting is CHAT_*=VALUE or OTEL_*=VALUE, got {item!r}")
        settings[name] = value
    return settings


def scrape(base_url: str) -> dict[str, float]:
    """The SCRAPED_METRICS from the service's /metrics (Prometheus text format)."""
    status, body = http_get(f"{base_url}/metrics")
    if status != 200:
        return {}
    totals: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not (match := _SAMPLE.match(line)):
            continue
        name, labels, value = match[1], match[2] or "", match[3]
        for key, (metric, label_filter) in SCRAPED_METRICS.items():
            if name == metric and label_filter in labels:
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def _sample_error(url: str, scenario: Scenario) -> str:
    """wrk counts non-2xx answers but does not show them: ask once more and keep the answer."""
    body = b'{"message": "bench error sample"}' if scenario.method == "POST" else None
    try:
        status, text = http_get(url, body=body)
    except OSError as exc:
        return f"request failed: {exc}"
    return f"{status} {text[:300].decode(errors='replace')}"


def _server_command(scenario: Scenario, port: int, db_path: Path) -> list[str]:
    if scenario.server is Server.REFERENCE:
        return [sys.executable, "-m", "bench.reference_app", "--port", str(port)]
    return [
        sys.executable,
        "-m",
        "chat_service",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db_path),
    ]


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A PostgreSQL server of the bench's own (the tests' throwaway server, fsync on, as a
    durable database runs), on this machine; yields its URL."""
    server = PostgresServer(fsync=True)
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def combine(results: list[WrkResult]) -> WrkResult:
    """Several wrk runs at once as one: requests and bytes added, each latency percentile the
    slowest run's (percentiles of separate runs cannot be merged exactly)."""
    if len(results) == 1:
        return results[0]
    errors: dict[str, int] = {}
    for result in results:
        for name, count in result.errors.items():
            errors[name] = errors.get(name, 0) + count
    return WrkResult(
        requests=sum(r.requests for r in results),
        duration_s=max(r.duration_s for r in results),
        bytes_read=sum(r.bytes_read for r in results),
        errors=errors,
        latency_ms={
            name: max(r.latency_ms[name] for r in results) for name in results[0].latency_ms
        },
        output="\n".join(r.output for r in results),
    )


def run_scenario(
    scenario: Scenario,
    options: Options,
    observe: Callable[[int], AbstractContextManager[object]] | None = None,
) -> ScenarioResult:
    """Run ``scenario`` once; ``observe(server_pid)`` wraps the measured run (profiling)."""
    if scenario.driver is Driver.STREAMS:
        return run_streams_scenario(scenario, options, observe)
    seed_seconds = 0.0
    db_path = options.workdir / f"{scenario.key}.db"
    if scenario.seed_exchanges:
        started = time.perf_counter()
        seed_database(db_path, scenario.seed_exchanges)
        seed_seconds = time.perf_counter() - started
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = base_environment()
    output = options.workdir / f"{scenario.key}-server.log"
    load_average = os.getloadavg()
    sink: Sink | None = None
    warmup_requests = 0
    # The servers import from the bench's own checkout (bench.reference_app, and
    # chat_service even where another checkout is installed in the virtualenv).
    env["PYTHONPATH"] = str(options.repo)
    with contextlib.ExitStack() as stack:
        if scenario.server is Server.SERVICE:
            if scenario.tracing:
                sink = stack.enter_context(running_sink(options.pinning.load(), options.repo))
                env |= {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
                }
            else:
                env["OTEL_TRACES_EXPORTER"] = "none"
            env |= SERVICE_DEFAULTS | dict(scenario.settings) | options.settings
            if scenario.database == "postgresql":
                env["CHAT_DATABASE_URL"] = stack.enter_context(running_postgres())
        ports = [port] + [free_port() for _ in range(scenario.replicas - 1)]
        servers = [
            stack.enter_context(
                running_server(
                    _server_command(scenario, replica_port, db_path),
                    env=env,
                    cpu_prefix=options.pinning.server(),
                    ready_url=f"http://127.0.0.1:{replica_port}/readyz",
                    output=output,
                    cwd=options.workdir,
                )
            )
            for replica_port in ports
        ]
        server = servers[0]
        url = f"{base_url}{scenario.path}"
        urls = [f"http://127.0.0.1:{replica_port}{scenario.path}" for replica_port in ports]
        drives = [
            functools.partial(
                run_wrk,
                replica_url,
                script=POST_SCRIPT if scenario.method == "POST" else REPORT_SCRIPT,
                connections=max(1, options.connections // len(urls)),
                cpu_prefix=options.pinning.load(),
            )
            for replica_url in urls
        ]

        def drive(duration_s: int) -> WrkResult:
            with concurrent.futures.ThreadPoolExecutor(len(drives)) as pool:
                runs = [pool.submit(one, duration_s=duration_s) for one in drives]
                return combine([run.result() for run in runs])

        subscriptions = None
        if scenario.idle_subscriptions:
            subscriptions = stack.enter_context(
                held_subscriptions(
                    base_url,
                    scenario.idle_subscriptions,
                    options.pinning.load(),
                    options.repo,
                    server.pid,
                )
            )
        if options.warmup_s > 0:
            warmup_requests = drive(duration_s=options.warmup_s).requests
            for replica in servers:
                wait_idle(replica.pid)
        cpu_before = [cpu_seconds(replica.pid) for replica in servers]
        with observe(server.pid) if observe is not None else contextlib.nullcontext():
            measured = drive(duration_s=options.duration_s)
        cpu_after = [cpu_seconds(replica.pid) for replica in servers]
        rss = peak_rss_bytes(server.pid)
        error_sample = _sample_error(url, scenario) if measured.errors["status"] else None
        metrics: dict[str, float] = {}
        if scenario.server is Server.SERVICE:
            for replica_port in ports:
                for name, value in scrape(f"http://127.0.0.1:{replica_port}").items():
                    metrics[name] = metrics.get(name, 0.0) + value
    text = output.read_bytes()
    return ScenarioResult(
        scenario=scenario,
        wrk=measured,
        warmup_requests=warmup_requests,
        peak_rss_mb=rss / 2**20 if rss is not None else None,
        server_output_bytes=len(text),
        server_output_lines=text.count(b"\n"),
        server_exit_status=server.returncode,
        load_average_before=load_average,
        seed_seconds=seed_seconds,
        service_metrics=metrics,
        otlp=sink.stats if sink is not None else {},
        error_sample=error_sample,
        server_cpu_seconds=_cpu_used(cpu_before, cpu_after),
        subscriptions=subscriptions,
    )


def _cpu_used(before: list[float | None], after: list[float | None]) -> float | None:
    """CPU seconds all the service's processes used between the two readings."""
    used = 0.0
    for start, end in zip(before, after, strict=True):
        if start is None or end is None:
            return None
        used += end - start
    return used
