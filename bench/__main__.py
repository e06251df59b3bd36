"""``python -m bench``: run the scenarios, print the table, write ``results/latest.json``."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, report
from bench.common import Options, ScenarioResult
from bench.processes import plan_pinning
from bench.runner import SERVICE_DEFAULTS, parse_settings, run_scenario
from bench.scenarios import REFERENCE, SCENARIOS
from bench.wrk import WrkError, wrk_version

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
FULL = {"warmup": 5, "duration": 15}
QUICK = {"warmup": 1, "duration": 4}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Load benchmark of chat-service with wrk (see bench/README.md).",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenario keys to run (default: all, %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run (1 s + 4 s each)")
    parser.add_argument("--warmup", type=int, help=f"warm-up seconds (default {FULL['warmup']})")
    parser.add_argument(
        "--duration", type=int, help=f"measured seconds (default {FULL['duration']})"
    )
    parser.add_argument("--connections", type=int, default=64, help="default %(default)s")
    parser.add_argument(
        "--streams", type=int, default=1000, help="(g): streamed chats at once (%(default)s)"
    )
    parser.add_argument(
        "--direct-streams",
        type=int,
        default=100,
        help="(g): streams asked of the model server directly, for its TTFT (%(default)s)",
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=1.0,
        help="(g): seconds over which the streams' starts are spread (%(default)s)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="a CHAT_* or OTEL_* setting for the service (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument(
        "--workdir", type=Path, help="where the databases and logs go (default: a temp dir)"
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.warmup = preset["warmup"] if args.warmup is None else args.warmup
    args.duration = preset["duration"] if args.duration is None else args.duration
    keys = [key.strip() for key in args.scenarios.split(",") if key.strip()]
    if unknown := [key for key in keys if key not in SCENARIOS]:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    # The reference runs first so that every later line can be read against it.
    args.keys = sorted(set(keys), key=lambda key: (key != REFERENCE, key))
    if args.streams < 1 or args.direct_streams < 0 or args.ramp < 0:
        parser.error("--streams must be positive, --direct-streams and --ramp not negative")
    if args.duration < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration and --connections must be positive, --warmup not negative")
    try:
        args.settings = parse_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_all(args: argparse.Namespace, options: Options) -> list[ScenarioResult] | None:
    """Each selected scenario in turn (the reference first); None if one failed to run."""
    results = []
    for key in args.keys:
        scenario = SCENARIOS[key]
        progress(f"bench: ({key}) {scenario.title} ...")
        started = time.perf_counter()
        try:
            result = run_scenario(scenario, options)
        except (WrkError, RuntimeError) as exc:
            progress(f"bench: ({key}) failed: {exc}")
            return None
        results.append(result)
        progress(
            f"bench: ({key}) {result.wrk.requests_per_s:,.0f} req/s, "
            f"p99 {result.wrk.latency_ms['p99']:.1f} ms ({time.perf_counter() - started:.0f}s)"
        )
    results.sort(key=lambda result: (result.scenario.key == REFERENCE, result.scenario.key))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if wrk_version() is None:
        progress("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
        return 2
    pinning = plan_pinning(not args.no_pin)
    pin = pinning.describe()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="chat-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        filesystem = machine.filesystem_type(workdir)
        conditions = (
            f"{args.connections} connections, {args.warmup} s warm-up + {args.duration} s "
            f"measured per scenario; server on CPU {pin['server_cpus']}, wrk and OTLP sink on "
            f"CPU {pin['load_cpus']}; database on {filesystem}"
        )
        progress(f"bench: {conditions}; work dir {workdir}")
        options = Options(
            warmup_s=args.warmup,
            duration_s=args.duration,
            connections=args.connections,
            pinning=pinning,
            settings=args.settings,
            repo=REPO,
            workdir=workdir,
            streams=args.streams,
            direct_streams=args.direct_streams,
            find_capacity=not args.quick,
            stream_ramp_s=args.ramp,
        )
        results = run_all(args, options)
    if results is None:
        return 1
    described = machine.describe(REPO)
    print(f"{conditions}; commit {(described['git']['commit'] or 'unknown')[:12]}\n")
    print(report.table(results) + "\n")
    print("\n".join(report.notes(results)))
    run = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": 1,
            "streams": args.streams,
            "direct_streams": args.direct_streams,
            "stream_ramp_s": args.ramp,
            "service_settings": SERVICE_DEFAULTS | args.settings,
            "database_filesystem": filesystem,
        },
        "pinning": pin,
        **described,
    }
    report.write_json(args.output, report.to_json(results, run))
    print(f"\nwrote {args.output}")
    missed = any(report.judge(result, results).failures for result in results)
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
