"""Start, pin, probe and stop the processes of a scenario (servers and the OTLP sink)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
# Descriptors beyond the sockets a scenario asks for: listeners, databases, logs, pipes.
NOFILE_SPARE = 1_024


@dataclass(frozen=True, slots=True)
class Pinning:
    """Which CPUs the server and the load side (wrk, OTLP sink) run on; None means unpinned."""

    server_cpus: str | None
    load_cpus: str | None

    def server(self) -> list[str]:
        return _taskset(self.server_cpus)

    def load(self) -> list[str]:
        return _taskset(self.load_cpus)

    def describe(self) -> dict[str, str | None]:
        return {
            "server_cpus": self.server_cpus,
            "load_cpus": self.load_cpus,
            "tool": "taskset" if self.server_cpus is not None else None,
        }


def _taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus is not None else []


def plan_pinning(enabled: bool) -> Pinning:
    """Server on the first usable CPU, load on the second: they must not share a core."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return Pinning(None, None)
    return Pinning(str(cpus[0]), str(cpus[1]))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0, body: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of a GET (or a POST of ``body``), error statuses included."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the process's resident-set high-water mark since it started."""
    return _status_bytes(pid, "VmHWM:")


def rss_bytes(pid: int) -> int | None:
    """VmRSS: the process's resident set now."""
    return _status_bytes(pid, "VmRSS:")


def raise_nofile_limit(sockets: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (the processes it starts inherit it) to fit
    ``sockets`` plus room for everything else, within the hard limit. The usual soft limit,
    1,024, is short of a thousand streams or subscriptions."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = sockets + NOFILE_SPARE
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _status_bytes(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return None


@contextlib.contextmanager
def running_server(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cpu_prefix: list[str],
    ready_url: str,
    output: Path,
    cwd: Path,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` (pinned), wait until ``ready_url`` answers 200, SIGTERM it on exit.

    taskset execs the command, so the Popen pid is the server's own pid.
    """
    with output.open("ab") as out:
        process = subprocess.Popen(
            [*cpu_prefix, *argv],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(process, ready_url, output, ready_timeout_s)
        yield process
    finally:
        stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, output: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited {process.returncode} during start-up:\n{tail}")
        with contextlib.suppress(OSError):
            if http_get(url, timeout=1.0)[0] == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server not ready at {url} within {timeout_s:.0f}s")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> int:
    """SIGTERM (a clean stop: the service commits and flushes spans), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def cpu_times(pid: int, tid: int | None = None) -> tuple[float, float] | None:
    """(user, system) CPU seconds so far of the process (all threads), or of one thread."""
    path = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields after "(comm)": state is index 0, so utime (14) and stime (15) are 11 and 12.
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def cpu_seconds(pid: int) -> float | None:
    times = cpu_times(pid)
    return sum(times) if times is not None else None


def wait_idle(pid: int, timeout: float = 15.0, interval: float = 0.2) -> float:
    """Wait until the server stops using CPU: work queued by the warm-up must not spill
    into the measurement. Returns the seconds waited."""
    started = time.monotonic()
    last = cpu_seconds(pid)
    while last is not None and time.monotonic() - started < timeout:
        time.sleep(interval)
        now = cpu_seconds(pid)
        if now is None or now - last < interval * 0.1:
            break
        last = now
    return time.monotonic() - started
