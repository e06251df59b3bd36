"""What a scenario's run takes (:class:`Options`) and gives (:class:`ScenarioResult`), and the
environment every server of the bench starts from: shared by the runner of wrk's scenarios
(runner.py) and of the streams scenario (stream_scenario.py), neither of which imports the
other's."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import Pinning
from bench.scenarios import Scenario
from bench.wrk import WrkResult


@dataclass(frozen=True, slots=True)
class Options:
    warmup_s: int
    duration_s: int
    connections: int
    pinning: Pinning
    settings: dict[str, str]  # extra CHAT_*/OTEL_* variables for the service
    repo: Path
    workdir: Path
    # Scenario (g): streams at once, direct streams to the model server, seconds of ramp.
    streams: int = 1000
    direct_streams: int = 100
    stream_ramp_s: float = 1.0
    # (g): when the TTFT target is missed, search for the highest stream count that meets it.
    find_capacity: bool = True


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    wrk: WrkResult
    warmup_requests: int
    peak_rss_mb: float | None
    server_output_bytes: int
    server_output_lines: int
    server_exit_status: int
    load_average_before: tuple[float, float, float]
    seed_seconds: float = 0.0
    service_metrics: dict[str, float] = field(default_factory=dict)
    otlp: dict[str, int] = field(default_factory=dict)
    server_cpu_seconds: float | None = None  # used by the server during the measured run
    error_sample: str | None = None  # one request's answer, when wrk saw error statuses
    streams: dict[str, Any] | None = None  # scenario (g): bench.streams' summary and more
    subscriptions: dict[str, Any] | None = None  # scenario (h): bench.subscribers' figures

    @property
    def server_cpu_cores(self) -> float | None:
        """Below ~0.95 on a pinned core under load: something else ran there too."""
        if self.server_cpu_seconds is None or not self.wrk.duration_s:
            return None
        return self.server_cpu_seconds / self.wrk.duration_s

    @property
    def cpu_ms_per_request(self) -> float | None:
        """CPU cost per request: steadier than req/s when other work shares the core."""
        if self.server_cpu_seconds is None or not self.wrk.requests:
            return None
        return 1000 * self.server_cpu_seconds / self.wrk.requests

    def _mean(self, total: str, count: str) -> float | None:
        divisor = self.service_metrics.get(count)
        dividend = self.service_metrics.get(total)
        return dividend / divisor if divisor and dividend is not None else None

    @property
    def average_commit_batch(self) -> float | None:
        return self._mean("commit_batch_size_sum", "commit_batch_size_count")

    @property
    def average_commit_ms(self) -> float | None:
        mean = self._mean("commit_seconds_sum", "commit_batch_size_count")
        return mean * 1000 if mean is not None else None

    @property
    def average_select_ms(self) -> float | None:
        mean = self._mean("select_seconds_sum", "select_count")
        return mean * 1000 if mean is not None else None

    @property
    def spans_per_request(self) -> float | None:
        served = self.warmup_requests + self.wrk.requests
        return self.otlp["spans"] / served if self.otlp.get("spans") and served else None


def base_environment() -> dict[str, str]:
    """The bench's environment minus CHAT_*/OTEL_*, so the figures depend on flags only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"  # as in the Dockerfile: each log line is written at once
    return env
