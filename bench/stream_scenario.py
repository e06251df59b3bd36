"""Scenario (g): many streamed chats at once, relayed from an OpenAI-compatible model server.

The model is the tests' model server (tests/support/model_server.py: the real wire format) in
its own process on the load CPU, told to stream every reply as ``MODEL_CHUNKS`` pieces
``MODEL_CHUNK_DELAY_S`` apart (20 tokens/s). The service, pinned to its CPU as in the other
scenarios, answers with ``CHAT_ASSISTANT=openai`` pointed at it. The load is
``python -m bench.streams`` (bench/streams.py), also on the load CPU. The result is a
``ScenarioResult`` like wrk's, so the table, the targets and the JSON take it unchanged:
"requests" are completed streams, the latency percentiles are the service's time to first
``delta``, errors are streams that did not end with ``done``; the rest is in ``streams``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Options, ScenarioResult, base_environment
from bench.limits import LIMITS_OFF
from bench.processes import (
    cpu_seconds,
    free_port,
    http_get,
    peak_rss_bytes,
    raise_nofile_limit,
    running_server,
    wait_idle,
)
from bench.scenarios import Scenario
from bench.streams import MARKER
from bench.wrk import WrkResult

MODEL_CHUNKS = 50
MODEL_CHUNK_DELAY_S = 0.05
WARMUP_STREAMS = 50
MODEL = "gpt-test"
# The capacity search (a missed TTFT target): counts tried from here, doubling, then the
# interval between the last met and the first missed halved this many times.
CAPACITY_START = 25
CAPACITY_BISECTIONS = 3
# Issue 26's count, run again on its own this many times (not in a quick run), on the service
# and on the bare relay: one run's p99 of a few hundred streams moves by tens of ms from run to
# run on a small VM, so a single run cannot say whether the count meets the target.
TARGET_STREAMS = 500
# Streams started over the ramp before the main run's (issue 26: "1,000 streams opened within
# one second must not delay the streams already running"): their longest wait between deltas.
RUNNING_STREAMS = 100
# The model server, recording nothing (its records would only grow), on uvloop (less of the
# load CPU per chunk): tests/support/model_server.py.
MODEL_SERVER = (sys.executable, "-m", "tests.support.model_server", "--no-records", "--uvloop")
TARGET_REPEATS = 3


def drive(
    options: Options,
    url: str,
    model_url: str,
    streams: int,
    direct: int,
    run: str = "main",
    running: int = 0,
) -> dict[str, Any]:
    """One run of the load generator on the load CPU; its summary. ``run`` names the run's
    conversations, so that no run's messages land in another's; ``running``: streams started
    over the ramp before, whose waits between deltas are timed as the others start."""
    argv = [
        *options.pinning.load(),
        sys.executable,
        "-m",
        "bench.streams",
        f"--url={url}",
        f"--model-url={model_url}",
        f"--model={MODEL}",
        f"--streams={streams}",
        f"--direct={direct}",
        f"--ramp={options.stream_ramp_s}",
        f"--running={running}",
        f"--conversation-prefix=bench-{run}-",
    ]
    completed = subprocess.run(
        argv, cwd=options.repo, capture_output=True, text=True, check=False, timeout=300
    )
    for line in completed.stdout.splitlines():
        if line.startswith(MARKER):
            summary: dict[str, Any] = json.loads(line[len(MARKER) :])
            return summary
    raise RuntimeError(
        f"bench.streams exited {completed.returncode} without figures:\n{completed.stderr[-2000:]}"
    )


def listen_overflows() -> int | None:
    """TcpExt ListenOverflows, machine-wide: connections dropped because a listening socket's
    accept queue was full. 1,000 connects in a second overflow a backlog of 128 (aiohttp's
    default) unless the server accepts as fast, and a dropped connect waits for the client's
    retransmission (1 s, then 2 s, ...), which lands in TTFT."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            value = fields.get("ListenOverflows")
            return int(value) if value is not None else None
    return None


def service_environment(base: dict[str, str], model_url: str, options: Options) -> dict[str, str]:
    """The service answering with the model server; no OPENAI_* of the bench's own leaks in."""
    env = {k: v for k, v in base.items() if not k.startswith("OPENAI_")}
    return env | {
        "OTEL_TRACES_EXPORTER": "none",
        **LIMITS_OFF,
        **model_settings(model_url),
        **options.settings,
    }


def model_settings(model_url: str) -> dict[str, str]:
    """The service's settings for answering with the model server at ``model_url``."""
    return {
        "CHAT_ASSISTANT": "openai",
        "CHAT_MODEL": MODEL,
        "OPENAI_BASE_URL": f"{model_url}/v1",
        "OPENAI_API_KEY": "sk-bench-not-secret",
        # Above the stream count: the service's own limit must not be what is measured.
        "CHAT_MODEL_MAX_CONCURRENCY": "2000",
    }


def added_ttft_ms(summary: dict[str, Any]) -> dict[str, float] | None:
    """What the relay added to the time to the first piece, p50 and p99 over the run's
    streams, each stream measured on its own: its time to the first piece minus the model
    server's own (bench/streams.py). None when a completed stream had no stamped first piece
    (a model server not asked to stamp)."""
    added = summary.get("added_ms")
    if not added or summary.get("stamped", 0) < summary.get("completed", 0):
        return None  # some completed streams went unmeasured: the percentiles are not theirs
    return {name: added[name] for name in ("p50", "p99")}


def ttft_difference_ms(summary: dict[str, Any]) -> dict[str, float] | None:
    """The relay's TTFT percentiles minus the direct streams': the estimate of the added
    time before each stream was measured on its own, kept for comparison. (A difference of
    percentiles, not a percentile of differences: the two sets of streams are different
    requests, and the direct ones are few.)"""
    service, direct = summary.get("ttft_ms"), (summary.get("direct") or {}).get("ttft_ms")
    if not service or not direct:
        return None
    return {name: round(service[name] - direct[name], 3) for name in ("p50", "p99")}


def find_capacity(
    measure: Callable[[int], float | None], limit: int, target_ms: float
) -> dict[str, Any]:
    """The highest stream count (up to ``limit``) whose added TTFT p99 (``measure(n)``, None
    when not every stream completed) meets ``target_ms``: doubling from
    ``CAPACITY_START``, then halving the interval between the last count that met it and the
    first that did not, ``CAPACITY_BISECTIONS`` times."""
    tried: list[dict[str, Any]] = []

    def meets(count: int) -> bool:
        added = measure(count)
        tried.append({"streams": count, "added_ttft_p99_ms": added})
        return added is not None and added <= target_ms

    met, missed = 0, None
    count = min(CAPACITY_START, limit)
    while True:
        if not meets(count):
            missed = count
            break
        met = count
        if count >= limit:
            break
        count = min(2 * count, limit)
    if missed is not None:
        for _ in range(CAPACITY_BISECTIONS):
            middle = (met + missed) // 2
            if middle == met:
                break
            if meets(middle):
                met = middle
            else:
                missed = middle
    return {"target_ms": target_ms, "highest_meeting": met, "tried": tried}


@dataclass(frozen=True, slots=True)
class Relay:
    """A relay under measurement: the service or the bare reference relay. The two share the
    server's CPU, so a run starts once both are idle (``idle_first``): what one still does
    after its run (commits, collections) must not land in the other's."""

    label: str
    url: str
    pid: int
    idle_first: tuple[int, ...] = ()


def wait_all_idle(relay: Relay) -> None:
    for pid in (relay.pid, *relay.idle_first):
        wait_idle(pid)


@contextlib.contextmanager
def reference_relay(
    options: Options, base: dict[str, str], model_url: str, idle_first: tuple[int, ...]
) -> Iterator[Relay]:
    """The bare relay (bench/reference_relay.py), running, pinned as the service is."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.reference_relay", "--port", str(port)]
    with running_server(
        [*argv, "--model-url", f"{model_url}/v1"],
        env=base,
        cpu_prefix=options.pinning.server(),
        ready_url=f"{url}/readyz",
        output=options.workdir / "g-reference.log",
        cwd=options.workdir,
    ) as process:
        yield Relay("reference", url, process.pid, idle_first)


def timed_drive(
    options: Options,
    relay: Relay,
    model_url: str,
    count: int,
    direct: int,
    run: str,
    running: int = 0,
    observe: Callable[[int], AbstractContextManager[object]] | None = None,
) -> tuple[dict[str, Any], float | None]:
    """One run of the load generator through ``relay`` (:func:`drive`), started once every
    process sharing the CPUs is idle: its summary, and the relay's CPU seconds over it (None
    when they could not be read). ``observe(pid)`` wraps the run (profiling)."""
    wait_all_idle(relay)
    before = cpu_seconds(relay.pid)
    with observe(relay.pid) if observe is not None else contextlib.nullcontext():
        summary = drive(options, relay.url, model_url, count, direct, run, running)
    after = cpu_seconds(relay.pid)
    return summary, None if before is None or after is None else after - before


def measured_run(
    options: Options, relay: Relay, model_url: str, streams: int, run: str
) -> dict[str, Any]:
    """One run of ``streams`` streams through ``relay`` (after ``RUNNING_STREAMS`` already
    running), started once it is idle: its summary, with the relay's CPU over the run and its
    added TTFT."""
    summary, cpu_s = timed_drive(
        options, relay, model_url, streams, options.direct_streams, run, RUNNING_STREAMS
    )
    if cpu_s is not None:
        summary["server_cpu_s"] = round(cpu_s, 3)
    summary["added_ttft_ms"] = added_ttft_ms(summary)
    summary["ttft_difference_ms"] = ttft_difference_ms(summary)
    return summary


# The stream counts at which each relay's CPU per stream set-up and per chunk are measured,
# and the chunks of the short replies that tell set-up from chunks apart.
COST_COUNTS = (50, 200, 500)
SHORT_CHUNKS = 1
# Runs of each count and length, their CPU summed: the kernel counts CPU time in ticks of
# 10 ms, which at 50 streams of one chunk (about 75 ms in all) is an error of up to 13% in
# one run.
COST_REPEATS = 3


def added_p99(options: Options, relay: Relay, model_url: str, count: int, run: str) -> float | None:
    """One run of ``count`` streams, started once the relay is idle: its added TTFT p99, or
    None when not every stream completed."""
    return p99s_of_run(options, relay, model_url, count, run)[0]


def p99s_of_run(
    options: Options, relay: Relay, model_url: str, count: int, run: str
) -> tuple[float | None, float | None]:
    """One run of ``count`` streams, started once the relay is idle: its added TTFT p99 (None
    when not every stream completed) and the same measure's p99 over the run's direct
    streams, the load side's own (None without direct streams)."""
    summary, _ = timed_drive(options, relay, model_url, count, options.direct_streams, run)
    added = added_ttft_ms(summary)
    direct = (summary.get("direct") or {}).get("added_ms")
    complete = summary["completed"] == summary["streams"]
    return (added["p99"] if added and complete else None, direct["p99"] if direct else None)


def at_target(options: Options, model_url: str, relays: Sequence[Relay]) -> dict[str, Any]:
    """``TARGET_REPEATS`` runs of ``TARGET_STREAMS`` streams (fewer if ``--streams`` asks
    for fewer) on each relay, the relays taking turns, so that a machine whose speed drifts
    drifts under both: per relay, the count and each run's added TTFT p99, and its direct
    streams' (what the load side alone added in that run)."""
    count = min(TARGET_STREAMS, options.streams)
    found: dict[str, dict[str, Any]] = {
        relay.label: {"streams": count, "added_p99_ms": [], "direct_added_p99_ms": []}
        for relay in relays
    }
    for repeat in range(TARGET_REPEATS):
        for relay in relays:
            run = f"{relay.label}-target-{repeat}"
            added, direct = p99s_of_run(options, relay, model_url, count, run)
            found[relay.label]["added_p99_ms"].append(added)
            found[relay.label]["direct_added_p99_ms"].append(direct)
    return found


def set_reply_chunks(
    model_url: str, chunks: int, delay_s: float = MODEL_CHUNK_DELAY_S, *, stamp: bool = True
) -> None:
    """Every reply of the model server from now on: ``chunks`` pieces, ``delay_s`` apart
    (50 ms), the first stamped with the server's own time to it (bench/streams.py's
    ``added_ms``) unless ``stamp`` is false."""
    behaviour = {
        "chunks": ["tok "] * chunks,
        "chunk_delay_s": delay_s,
        "stamp_first_chunk": stamp,
    }
    status, _ = http_get(f"{model_url}/_control/default", body=json.dumps(behaviour).encode())
    if status != 200:
        raise RuntimeError(f"the model server refused its behaviour: {status}")


def relay_costs(
    options: Options, model_url: str, relays: Sequence[Relay]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Each relay's CPU per stream set-up and per relayed chunk at each of COST_COUNTS: the
    same count of streams with replies of SHORT_CHUNKS pieces, then of MODEL_CHUNKS, each
    COST_REPEATS times; what the long runs cost beyond the short ones is chunks, the rest of
    the short ones set-up. The relays take turns run by run, so that a machine whose speed
    drifts over the minutes this takes drifts under both."""
    costs: dict[str, dict[str, dict[str, float | None]]] = {r.label: {} for r in relays}
    for count in COST_COUNTS:
        cpu: dict[str, dict[int, float | None]] = {r.label: {} for r in relays}
        for chunks in (SHORT_CHUNKS, MODEL_CHUNKS):
            set_reply_chunks(model_url, chunks)
            for relay in relays:
                cpu[relay.label][chunks] = 0.0
            for repeat in range(COST_REPEATS):
                for relay in relays:
                    name = f"{relay.label}-cost{count}-{chunks}-{repeat}"
                    spent = cpu_of_run(options, relay, model_url, count, name)
                    total = cpu[relay.label][chunks]
                    cpu[relay.label][chunks] = (
                        None if total is None or spent is None else total + spent
                    )
        for relay in relays:
            costs[relay.label][str(count)] = setup_and_chunk(
                cpu[relay.label][SHORT_CHUNKS], cpu[relay.label][MODEL_CHUNKS], count
            )
    set_reply_chunks(model_url, MODEL_CHUNKS)
    return costs


def cpu_of_run(
    options: Options, relay: Relay, model_url: str, count: int, run: str
) -> float | None:
    """The relay's CPU seconds over one run of ``count`` streams (no direct ones), started
    once it is idle; None when not every stream completed or its CPU could not be read."""
    summary, cpu_s = timed_drive(options, relay, model_url, count, 0, run)
    return cpu_s if summary["completed"] == count else None


def setup_and_chunk(short: float | None, long: float | None, count: int) -> dict[str, float | None]:
    """CPU per stream set-up (ms) and per chunk (µs) from the CPU seconds of COST_REPEATS runs
    of ``count`` short streams and of as many long ones."""
    streams = count * COST_REPEATS
    per_chunk = (
        None
        if short is None or long is None
        else (long - short) / (streams * (MODEL_CHUNKS - SHORT_CHUNKS))
    )
    setup = None if short is None or per_chunk is None else short / streams - per_chunk
    return {
        "setup_ms": None if setup is None else round(1e3 * setup, 3),
        "chunk_us": None if per_chunk is None else round(1e6 * per_chunk, 1),
    }


def cpu_per_chunk_us(cpu_s: float | None, completed: int) -> float | None:
    """All of a relay's CPU over a run over the model chunks of its completed streams (a
    relay may send several chunks as one delta, so deltas are not what is counted)."""
    if cpu_s is None or not completed:
        return None
    return 1e6 * cpu_s / (completed * MODEL_CHUNKS)


def run_streams_scenario(
    scenario: Scenario,
    options: Options,
    observe: Callable[[int], AbstractContextManager[object]] | None = None,
) -> ScenarioResult:
    """Model server, service and bare relay; a warm-up wave on each, then
    ``options.streams`` streams at once through the service and then through the bare relay;
    when the service's added TTFT misses its target, the highest stream count that meets it;
    then (not in a quick run) both relays' costs and repeats at the target's count, the
    relays taking turns. ``observe(server_pid)`` wraps the service's measured run
    (profiling)."""
    # Each stream holds two sockets in the service (client and model side), and one in the
    # model server and the client each.
    raise_nofile_limit(2 * options.streams)
    base = base_environment()
    base["PYTHONPATH"] = str(options.repo)
    model_port, port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    url = f"http://127.0.0.1:{port}"
    output = options.workdir / f"{scenario.key}-server.log"
    load_average = os.getloadavg()
    db_path: Path = options.workdir / f"{scenario.key}.db"
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(
            running_server(
                [*MODEL_SERVER, "--port", str(model_port)],
                env=base,
                cpu_prefix=options.pinning.load(),
                ready_url=f"{model_url}/health",
                output=options.workdir / f"{scenario.key}-model.log",
                cwd=options.workdir,
            )
        )
        set_reply_chunks(model_url, MODEL_CHUNKS)
        argv = [sys.executable, "-m", "chat_service", "--host", "127.0.0.1", "--port", str(port)]
        server = stack.enter_context(
            running_server(
                [*argv, "--db", str(db_path)],
                env=service_environment(base, model_url, options),
                cpu_prefix=options.pinning.server(),
                ready_url=f"{url}/readyz",
                output=output,
                cwd=options.workdir,
            )
        )
        others = (server.pid, model.pid)
        reference = stack.enter_context(reference_relay(options, base, model_url, others))
        service = Relay("service", url, server.pid, (reference.pid, model.pid))
        warmup_streams = 0
        if options.warmup_s > 0:
            # Imports, the first connections and the store's first commits, outside the run.
            warmup_streams = drive(options, url, model_url, WARMUP_STREAMS, 5)["completed"]
            drive(options, reference.url, model_url, WARMUP_STREAMS, 5, "reference-warmup")
        wait_all_idle(service)  # the warm-up's work done, in the model server too
        model_cpu_before = cpu_seconds(model.pid)
        overflows_before = listen_overflows()
        summary, server_cpu = timed_drive(
            options,
            service,
            model_url,
            options.streams,
            options.direct_streams,
            "main",
            RUNNING_STREAMS,
            observe,
        )
        model_cpu_after = cpu_seconds(model.pid)
        overflows_after = listen_overflows()
        rss = peak_rss_bytes(server.pid)
        # The same load on the bare relay straight after, on the same machine state.
        summary["reference"] = measured_run(
            options, reference, model_url, options.streams, "reference"
        )
        target_ms = scenario.target.max_added_ttft_p99_ms
        added = added_ttft_ms(summary)
        if options.find_capacity and target_ms is not None and added and added["p99"] > target_ms:

            def measure(count: int) -> float | None:
                return added_p99(options, service, model_url, count, f"capacity{count}")

            summary["capacity"] = find_capacity(measure, options.streams, target_ms)
        if options.find_capacity:  # not in a quick run
            costs = relay_costs(options, model_url, (service, reference))
            repeats = at_target(options, model_url, (service, reference))
            summary["costs"], summary["reference"]["costs"] = costs["service"], costs["reference"]
            summary["at_target"] = repeats["service"]
            summary["reference"]["at_target"] = repeats["reference"]
    if model_cpu_before is not None and model_cpu_after is not None:
        summary["model_server_cpu_s"] = round(model_cpu_after - model_cpu_before, 3)
    if overflows_before is not None and overflows_after is not None:
        summary["listen_overflows"] = overflows_after - overflows_before
    summary |= {
        "model_chunks": MODEL_CHUNKS,
        "model_chunk_delay_s": MODEL_CHUNK_DELAY_S,
        "added_ttft_ms": added_ttft_ms(summary),
        "ttft_difference_ms": ttft_difference_ms(summary),
    }
    text = output.read_bytes()
    failed = summary["streams"] - summary["completed"]
    ttft = summary["ttft_ms"] or {}
    return ScenarioResult(
        scenario=scenario,
        wrk=WrkResult(
            requests=summary["completed"],
            duration_s=summary["wall_s"],
            bytes_read=0,
            errors={"incomplete_streams": failed},
            latency_ms={name: float("nan") for name in ("p50", "p95", "p99")} | ttft,
            output=json.dumps(summary),
        ),
        warmup_requests=warmup_streams,
        peak_rss_mb=rss / 2**20 if rss is not None else None,
        server_output_bytes=len(text),
        server_output_lines=text.count(b"\n"),
        server_exit_status=server.returncode,
        load_average_before=load_average,
        server_cpu_seconds=server_cpu,
        streams=summary,
    )
