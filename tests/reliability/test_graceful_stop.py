"""SIGTERM/SIGINT: stop accepting, finish what is in flight, flush, exit 0 in bounded time."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.limits import LIMITS_OFF
from chat_service.app import create_app
from chat_service.config import Settings
from chat_service.telemetry.tracing import EXPORT_FLUSH_TIMEOUT_S
from tests.conftest import StartService
from tests.support import metrics
from tests.support.load import PostLoad
from tests.support.otlp import OtlpHttpReceiver
from tests.support.sse import post_stream

IN_FLIGHT = 16
# CHAT_SHUTDOWN_TIMEOUT (10 s) + exporter flush (5 s): what k8s/ must allow after preStop.
STOP_BOUND_S = 10 + EXPORT_FLUSH_TIMEOUT_S


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_in_flight_requests_finish_and_are_stored(start_service: StartService, sig: int) -> None:
    # Each reply takes 3 s: long enough for all sixteen to be in flight together on a busy
    # 2-core machine (500 ms was not, once in CI), short enough to drain well inside the bound.
    service = start_service(env={"CHAT_ASSISTANT_LATENCY_MS": "3000", **LIMITS_OFF})
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        # One conversation each: a conversation answers one message at a time.
        futures = [
            pool.submit(
                service.request,
                "POST",
                "/chat/message",
                {"message": f"in flight {i}", "conversation_id": f"c{i}"},
            )
            for i in range(IN_FLIGHT)
        ]
        # Wait until the service counts all of them in flight (inside the assistant's 3 s).
        in_flight = {"http_request_method": "POST", "http_route": "/chat/message"}
        deadline = time.monotonic() + 10
        while metrics.value(service, "http_server_active_requests", **in_flight) != IN_FLIGHT:
            assert time.monotonic() < deadline, "the requests never were all in flight"
            time.sleep(0.01)
        stopped_at = time.monotonic()
        service.process.send_signal(sig)
        deadline = time.monotonic() + 0.3
        while not refuses_connections(service.port) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert refuses_connections(service.port), "no new connections while draining"
        statuses = [future.result()[0] for future in futures]
    assert statuses == [200] * IN_FLIGHT
    assert service.process.wait(STOP_BOUND_S) == 0
    assert time.monotonic() - stopped_at < STOP_BOUND_S
    messages = [json.loads(line)["message"] for line in service.stdout().splitlines()]
    assert "draining: finishing in-flight requests" in messages

    restarted = start_service(db_path=service.db_path)
    for i in range(IN_FLIGHT):
        _, _, history = restarted.request("GET", f"/chat/history?conversation_id=c{i}")
        assert [item["user"] for item in history] == [f"in flight {i}"]


def test_a_stream_open_at_sigterm_finishes_and_is_stored(start_service: StartService) -> None:
    service = start_service(env={"CHAT_ASSISTANT_TOKEN_MS": "100"})
    stream = post_stream(service.port, {"message": "keep talking"})
    events = stream.events()
    assert next(events).event == "delta"
    service.process.send_signal(signal.SIGTERM)
    rest = list(events)
    assert rest[-1].event == "done"
    reply = rest[-1].data["response"]
    assert reply == 'You said: "keep talking". This is turn 1 of our conversation.'
    assert service.process.wait(STOP_BOUND_S) == 0
    restarted = start_service(db_path=service.db_path)
    history = restarted.request("GET", "/chat/history")[2]
    assert [(item["user"], item["AI"]) for item in history] == [("keep talking", reply)]


def test_sigterm_under_load_fails_no_accepted_request(start_service: StartService) -> None:
    service = start_service(env={"CHAT_ASSISTANT_LATENCY_MS": "20", **LIMITS_OFF})
    load = PostLoad(service.port, clients=16, prefix="load").start()
    # Under load for real (however busy the machine is) before the signal.
    deadline = time.monotonic() + 10
    while load.acked_count < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert load.acked_count >= 50
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(STOP_BOUND_S) == 0
    load.stop()
    assert load.non_200_responses() == {}, "every request the service answered succeeded"

    restarted = start_service(db_path=service.db_path)
    _, _, history = restarted.request("GET", "/chat/history")
    stored = {item["user"] for item in history}
    assert all(text in stored for record in load.records for text in record.acked)


def test_spans_are_flushed_on_stop(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves before the stop
            }
        )
        service.request("POST", "/chat/message", {"message": "last words"})
        assert receiver.spans == []
        assert service.stop(signal.SIGTERM) == 0
        names = {span.name for span in receiver.spans}
    assert {"POST /chat/message", "chat dummy-1", "INSERT exchanges"} <= names


def test_a_stuck_collector_does_not_hold_the_stop(start_service: StartService) -> None:
    with OtlpHttpReceiver(delay_s=60) as receiver:
        service = start_service(
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "60",
            }
        )
        service.request("POST", "/chat/message", {"message": "hello"})
        started = time.monotonic()
        assert service.stop(signal.SIGTERM, timeout=STOP_BOUND_S + 5) == 0
        elapsed = time.monotonic() - started
    assert elapsed < EXPORT_FLUSH_TIMEOUT_S + 3, elapsed


async def test_readyz_is_503_once_draining(aiohttp_client: Any, tmp_path: Any) -> None:
    app = create_app(Settings(db_path=tmp_path / "chat.db"))
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    await app.shutdown()  # what aiohttp runs on SIGTERM, before waiting for in-flight requests
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "error", "message": "The service is shutting down."}
    assert (await client.get("/healthz")).status == 200
