"""Run ``wrk`` and read its figures from the JSON line that ``report.lua`` prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
POST_SCRIPT = BENCH_DIR / "post.lua"
REPORT_SCRIPT = BENCH_DIR / "report.lua"
MARKER = "BENCH_JSON "
# Generous, so that a slow response counts in the latency figures instead of vanishing
# into wrk's timeout counter; anything slower than this is an error.
REQUEST_TIMEOUT_S = 10


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no figures."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    bytes_read: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    output: str

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        """Non-2xx/3xx responses plus socket errors (connect, read, write, timeout)."""
        return sum(self.errors.values())


def wrk_version() -> str | None:
    binary = shutil.which("wrk")
    if binary is None:
        return None
    # wrk has no --version flag: it prints its banner and usage (exit status 1).
    completed = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    lines = (completed.stdout or completed.stderr).splitlines()
    return lines[0].strip() if lines else None


def run_wrk(
    url: str,
    *,
    script: Path,
    duration_s: int,
    connections: int,
    cpu_prefix: list[str],
) -> WrkResult:
    """One wrk run: one thread, ``connections`` keep-alive connections, for ``duration_s``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    argv = [
        *cpu_prefix,
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={REQUEST_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    # report.lua is loaded with require(), so wrk's Lua must look in bench/.
    env = {**os.environ, "LUA_PATH": f"{BENCH_DIR}/?.lua;;"}
    try:
        completed = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=duration_s + REQUEST_TIMEOUT_S + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(argv)}") from exc
    if completed.returncode != 0:
        raise WrkError(f"wrk exited {completed.returncode}: {completed.stderr.strip()}")
    return parse_output(completed.stdout)


def parse_output(output: str) -> WrkResult:
    """The figures of ``report.lua``'s line; wrk's own text is kept for the record."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data: dict[str, Any] = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"wrk printed no {MARKER.strip()} line:\n{output}")
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        bytes_read=int(data["bytes"]),
        errors={name: int(count) for name, count in data["errors"].items()},
        latency_ms={name: float(us) / 1000 for name, us in data["latency_us"].items()},
        output="\n".join(line for line in output.splitlines() if not line.startswith(MARKER)),
    )
