"""A dead or slow collector costs the requests nothing; what it loses is counted."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import StartService
from tests.support.otlp import OtlpHttpReceiver
from tests.support.service import ServiceProcess, free_port

REQUESTS = 30


def timed_posts(service: ServiceProcess) -> list[float]:
    latencies = []
    for i in range(REQUESTS):
        started = time.perf_counter()
        status, _, _ = service.request("POST", "/chat/message", {"message": f"m{i}"})
        latencies.append(time.perf_counter() - started)
        assert status == 200
    return latencies


def dropped_spans(service: ServiceProcess) -> float:
    _, _, text = service.request("GET", "/metrics")
    match = re.search(r"^chat_telemetry_spans_dropped_total (\S+)$", text, re.MULTILINE)
    assert match, "the dropped-spans counter is exported"
    return float(match.group(1))


def test_closed_collector_port(start_service: StartService) -> None:
    service = start_service(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "OTEL_BSP_SCHEDULE_DELAY": "20",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        }
    )
    latencies = timed_posts(service)
    # Each export attempt against the closed port retries for up to a second; if that
    # happened on the request path, requests would take that long. They take milliseconds.
    assert max(latencies) < 0.5, latencies
    deadline = time.monotonic() + 15
    while dropped_spans(service) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dropped_spans(service) > 0


@pytest.mark.parametrize(("status", "delay_s"), [(500, 0.0), (200, 2.0)], ids=["http-500", "slow"])
def test_failing_or_slow_collector(
    start_service: StartService, status: int, delay_s: float
) -> None:
    with OtlpHttpReceiver(status=status, delay_s=delay_s) as receiver:
        service = start_service(
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "20",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            }
        )
        latencies = timed_posts(service)
        assert max(latencies) < 0.5, latencies
        if status != 200:
            deadline = time.monotonic() + 15
            while dropped_spans(service) == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert dropped_spans(service) > 0
        service.kill()
