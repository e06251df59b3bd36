"""``python -m bench.profiling``: where the service's CPU goes under a scenario's load.

It runs a scenario as the benchmark does (same pinning, settings and load) and, during
the measured run, samples the server with py-spy (``pip install py-spy``) and reads each
thread's CPU time from /proc. It writes a summary to ``profiles/<key>.txt`` (committed)
and the collapsed stacks, for flamegraph.pl or speedscope, to
``results/<key>.collapsed.txt`` (git-ignored: about 1 MB each).

py-spy samples in ``--gil`` mode, i.e. only the thread holding the GIL: without it, the
aiosqlite worker threads, which wait in ``SimpleQueue.get(timeout=...)``, look busy when
they are idle. SQLite's own C work runs without the GIL and is not in the samples; the
per-thread CPU times from /proc show how much there is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Options
from bench.processes import cpu_times, plan_pinning
from bench.runner import parse_settings, run_scenario
from bench.scenarios import SCENARIOS

BENCH_DIR = Path(__file__).resolve().parent
PROFILES = BENCH_DIR / "profiles"
STACKS = BENCH_DIR / "results"
# Where a sample's CPU goes. Logging and metrics calls are leaves of a request's work, so
# a sample with any of their frames on the stack is theirs (the JSON encoding inside a log
# call is logging). Otherwise the innermost frame that belongs to an area decides (generic
# stdlib frames such as asyncio, contextlib or dataclass __init__ are passed over): a span
# started by the store counts as tracing, the store's own Python as chat_service, and the
# OpenTelemetry middleware wrapping every request only for its own frames. The shares add
# up to 100%.
ENCLOSING_AREAS: dict[str, str] = {
    "logging (stdlib logging, python-json-logger, access log)": (
        r"/logging/|/pythonjsonlogger/|chat_service/telemetry/logs\.py"
    ),
    "metrics (prometheus_client)": r"/prometheus_client/|chat_service/telemetry/metrics\.py",
}
AREAS: dict[str, str] = {
    "tracing (OpenTelemetry SDK, context, instrumentation, exporter)": (
        r"/opentelemetry/|chat_service/telemetry/(tracing|genai|context)\.py"
    ),
    "SQLite access (aiosqlite, sqlite3)": r"/aiosqlite/|/sqlite3/",
    "JSON (json module)": r"/json/",
    # Not chat_service/__main__.py nor aiohttp/web.py (run_app): they hold the event loop.
    "chat_service (handlers, middlewares, validation, store, assistant)": (
        r"/chat_service/(api|store|assistant)/"
    ),
    "aiohttp (HTTP protocol, request, response; multidict, yarl)": (
        r"/aiohttp/(?!web\.py)|/multidict/|/yarl/"
    ),
}
OTHER_AREA = "event loop and the rest (asyncio, selectors, stdlib)"
_LINE = re.compile(r":\d+\)$")
_THREAD = re.compile(r"thread \((\d+)\): (.*)")
_PREFIX = re.compile(
    r"\((?:/[^()]*/(?:site-packages|python3\.\d+)/|" + re.escape(str(BENCH_DIR.parent)) + r"/)"
)


def py_spy_binary() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def thread_cpu_times(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds so far of each thread of ``pid``, by thread id."""
    times = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ValueError):
                if (pair := cpu_times(pid, int(tid))) is not None:
                    times[int(tid)] = pair
    return times


@dataclass(slots=True)
class Sampler:
    """py-spy over the measured run, plus each thread's CPU use in the same window."""

    output: Path
    seconds: int
    rate: int
    cpu_prefix: list[str]
    # (user, system) cores used by each thread over the sampled window
    cores_by_thread: dict[int, tuple[float, float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, pid: int) -> Iterator[None]:
        argv = [*self.cpu_prefix, py_spy_binary(), "record", "--pid", str(pid)]
        argv += ["-d", str(self.seconds), "-r", str(self.rate), "--gil", "--threads"]
        argv += ["--full-filenames", "--format", "raw", "-o", str(self.output)]
        before, started = thread_cpu_times(pid), time.monotonic()
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            yield
        finally:
            # py-spy stops by itself after ``seconds``, inside the (longer) load run.
            _, errors = process.communicate(timeout=self.seconds + 60)
            if process.returncode != 0:
                raise RuntimeError(f"py-spy failed: {errors.strip()}")
        wall = time.monotonic() - started
        after = thread_cpu_times(pid)
        self.cores_by_thread = {
            tid: (
                (user - before.get(tid, (0.0, 0.0))[0]) / wall,
                (system - before.get(tid, (0.0, 0.0))[1]) / wall,
            )
            for tid, (user, system) in after.items()
        }


def _function(frame: str) -> str:
    """``name (path:line)`` without the line and the install prefix: lines add up."""
    return _PREFIX.sub("(", _LINE.sub(")", frame))


_ENCLOSING = {name: re.compile(pattern) for name, pattern in ENCLOSING_AREAS.items()}
_INNERMOST = {name: re.compile(pattern) for name, pattern in AREAS.items()}


_GENERIC = re.compile(
    r"/(asyncio|concurrent)/|/(contextlib|functools|threading|abc)\.py|<frozen|<string>"
)


def area(frames: list[str]) -> tuple[str, int | None]:
    """The area a sample's CPU belongs to (see ENCLOSING_AREAS and AREAS), and the index of
    the frame that decided it."""
    for name, pattern in _ENCLOSING.items():
        for index, frame in enumerate(frames):
            if pattern.search(frame):
                return name, index
    for index in range(len(frames) - 1, -1, -1):
        for name, pattern in _INNERMOST.items():
            if pattern.search(frames[index]):
                return name, index
    return OTHER_AREA, None


def entry(frames: list[str], name: str, index: int) -> str:
    """``caller -> first frame`` of the area's run of frames around ``index``: who spends it.

    For tracing it tells the server-span middleware from the store's spans, for logging
    the access log from the handler's own records.
    """
    pattern = _ENCLOSING.get(name) or _INNERMOST[name]
    while index > 0 and (pattern.search(frames[index - 1]) or _GENERIC.search(frames[index - 1])):
        index -= 1
    while _GENERIC.search(frames[index]) and index + 1 < len(frames):
        index += 1
    caller = _function(frames[index - 1]).split(" (")[0] if index > 0 else "-"
    return f"{caller} -> {_function(frames[index])}"


def summarize(
    collapsed: str, cores_by_thread: dict[int, tuple[float, float]], top: int = 30
) -> str:
    """CPU per thread; shares of GIL samples per thread, area and function."""
    total = 0
    threads: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    entries: dict[str, Counter[str]] = {}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        total += count
        threads[thread] += count
        if frames:
            own[_function(frames[-1])] += count
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += count
        name, index = area(frames)
        areas[name] += count
        if index is not None:
            entries.setdefault(name, Counter())[entry(frames, name, index)] += count
    if total == 0:
        return "no samples\n"

    def section(title: str, counts: Counter[str], limit: int | None = None) -> list[str]:
        rows = [f"{100 * n / total:6.1f}%  {name}" for name, n in counts.most_common(limit)]
        return [title, *rows, ""]

    names = {int(m[1]): m[2] for t in threads if (m := _THREAD.match(t))}
    lines = ["CPU used per thread (from /proc, in cores; pinned to one core, max 1.0):"]
    lines.append("   user    sys  thread")
    by_use = sorted(cores_by_thread.items(), key=lambda item: -sum(item[1]))
    lines += [
        f"  {user:5.2f}  {system:5.2f}  {names.get(tid, f'thread {tid}')}"
        for tid, (user, system) in by_use
    ]
    user_total = sum(user for user, _ in cores_by_thread.values())
    system_total = sum(system for _, system in cores_by_thread.values())
    lines += [f"  {user_total:5.2f}  {system_total:5.2f}  total", ""]
    lines += [f"{total} samples of the thread holding the GIL; shares of all of them:", ""]
    lines += section("per thread:", threads)
    lines += section("per area (rules: AREAS in bench/profiling.py; adds up to 100%):", areas)
    lines.append("per area, where it is entered (caller -> first frame of the area), top 5:")
    for name, _ in areas.most_common():
        if name in entries:
            lines += [f"  {name}:", *section("", entries[name], 5)[1:-1]]
    lines.append("")
    lines += section(f"top {top} functions by self time:", own, top)
    lines += section(f"top {top} functions by inclusive time:", inclusive, top)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("--scenarios", default="a,b", help="default %(default)s")
    parser.add_argument("--seconds", type=int, default=10, help="sampled seconds (%(default)s)")
    parser.add_argument("--rate", type=int, default=100, help="samples/s (%(default)s)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--output-dir", type=Path, default=PROFILES, help="for summaries")
    parser.add_argument("--stacks-dir", type=Path, default=STACKS, help="for collapsed stacks")
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    parser.add_argument("--label", help="file name suffix, e.g. for a run with --set")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    keys = [key.strip() for key in args.scenarios.split(",") if key.strip()]
    if unknown := [key for key in keys if key not in SCENARIOS]:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    args.stacks_dir.mkdir(parents=True, exist_ok=True)
    pinning = plan_pinning(True)
    for key in keys:
        name = f"{key}-{args.label}" if args.label else key
        collapsed = args.stacks_dir / f"{name}.collapsed.txt"
        with tempfile.TemporaryDirectory(prefix="chat-profile-") as tmp:
            options = Options(
                warmup_s=args.warmup,
                duration_s=args.seconds + 2,  # load outlasts the sampling window
                connections=args.connections,
                pinning=pinning,
                settings=settings,
                repo=BENCH_DIR.parent,
                workdir=Path(tmp),
            )
            sampler = Sampler(collapsed, args.seconds, args.rate, pinning.load())
            result = run_scenario(SCENARIOS[key], options, sampler)
        settings_text = " ".join(f"{k}={v}" for k, v in settings.items()) or "bench defaults"
        header = (
            f"scenario ({key}) {SCENARIOS[key].title} [{settings_text}]: "
            f"{result.wrk.requests_per_s:,.0f} req/s, p99 {result.wrk.latency_ms['p99']:.1f} ms, "
            f"server CPU {result.cpu_ms_per_request or 0:.3f} ms per request; "
            f"sampled at {args.rate} Hz\n\n"
        )
        summary = header + summarize(collapsed.read_text(), sampler.cores_by_thread)
        (args.output_dir / f"{name}.txt").write_text(summary)
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
