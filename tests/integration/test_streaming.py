"""Streamed replies (server-sent events) from the real process, with the dummy assistant
pausing between words: the event sequence, stop, ordering, and how both are recorded."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from bench.limits import LIMITS_OFF
from tests.conftest import StartService
from tests.support import metrics
from tests.support.service import ServiceProcess
from tests.support.sse import Event, post_stream

# Between the dummy's words: long enough that a stop lands between two of them.
TOKEN_MS = 200
FIRST_REPLY = 'You said: "tell me a story". This is turn 1 of our conversation.'


@pytest.fixture
def service(start_service: StartService) -> ServiceProcess:
    return start_service(env={"CHAT_ASSISTANT_TOKEN_MS": str(TOKEN_MS), **LIMITS_OFF})


def history(service: ServiceProcess, conversation: str = "default") -> list[dict[str, str]]:
    """The conversation's texts: each exchange's message and reply."""
    status, _, body = service.request("GET", f"/chat/history?conversation_id={conversation}")
    assert status == 200
    return [{"user": item["user"], "AI": item["AI"]} for item in body]


def access_lines(service: ServiceProcess, path: str = "/chat/message") -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in service.stdout().splitlines()]
    return [
        line
        for line in lines
        if line.get("logger") == "chat_service.access" and line.get("path") == path
    ]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_deltas_then_done_after_the_commit(service: ServiceProcess) -> None:
    stream = post_stream(service.port, {"message": "tell me a story"})
    assert stream.status == 200
    assert stream.header("Content-Type") == "text/event-stream"
    assert stream.header("Cache-Control") == "no-cache"
    assert stream.header("X-Accel-Buffering") == "no"
    assert (stream.header("traceresponse") or "").startswith("00-")
    deltas: list[Event] = []
    for event in stream.events():
        if event.event == "delta":
            deltas.append(event)
            continue
        assert event.event == "done"
        # Read right when `done` arrives: the exchange must already be committed.
        assert history(service) == [{"user": "tell me a story", "AI": FIRST_REPLY}]
        assert event.data == {"status": "Success", "response": FIRST_REPLY}
        break
    else:
        pytest.fail("the stream ended without done")
    assert "".join(delta.data["text"] for delta in deltas) == FIRST_REPLY
    assert len(deltas) == len(FIRST_REPLY.split()), "one delta per word"
    # Sent as they are produced, not held until the reply is whole: they arrive over the
    # reply's time. (The spread, not each gap: a test client descheduled for a moment reads
    # two pieces at once, and that is no fault of the service.)
    spread = deltas[-1].received_at - deltas[0].received_at
    assert spread > (len(deltas) - 1) * TOKEN_MS / 1000 / 2, "each piece is sent as produced"
    stream.close()
    [line] = access_lines(service)
    assert (line["status"], line["streamed"], line["reply_chars"]) == (200, True, len(FIRST_REPLY))
    assert "stopped" not in line
    # The request's line (like its span and duration metric) ends with the stream: it lasted
    # at least the pauses between the words.
    assert line["duration_ms"] >= (len(deltas) - 1) * TOKEN_MS * 0.9


def test_without_the_accept_header_the_contract_is_unchanged(service: ServiceProcess) -> None:
    status, headers, body = service.request("POST", "/chat/message", {"message": "hi"})
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert body == {
        "status": "Success",
        "response": "Hello! Nice to meet you. This is the start of our conversation.",
    }


def test_stop_stores_the_part_that_was_sent(service: ServiceProcess) -> None:
    stream = post_stream(service.port, {"message": "tell me a story"})
    received = []
    for event in stream.events():
        received.append(event.data["text"])
        if len(received) == 3:
            break
    assert metrics.value(service, "chat_streams_open") == 1
    stream.close()  # the user pressed Stop, 3 words in

    wait_for(lambda: bool(history(service)))
    assert history(service) == [{"user": "tell me a story", "AI": "".join(received)}]
    assert "".join(received) == 'You said: "tell '
    wait_for(lambda: bool(access_lines(service)))
    [line] = access_lines(service)
    assert (line["status"], line["stopped"], line["turn"]) == (499, True, 1)
    assert metrics.value(service, "chat_streams_open") == 0
    labels = {
        "http_request_method": "POST",
        "http_route": "/chat/message",
        "http_response_status_code": "499",
    }
    assert metrics.value(service, "http_server_request_duration_seconds_count", **labels) == 1


def test_stop_before_the_first_word_stores_nothing(start_service: StartService) -> None:
    service = start_service(env={"CHAT_ASSISTANT_LATENCY_MS": "1500"})
    stream = post_stream(service.port, {"message": "never mind"})
    time.sleep(0.3)  # the model is still thinking: no headers, no event yet
    stream.close()
    wait_for(lambda: bool(access_lines(service)))
    [line] = access_lines(service)
    assert line["status"] == 499
    time.sleep(1.5)  # past the dummy's latency: a reply that kept running would now be stored
    assert history(service) == []


def test_the_next_message_sees_a_stopped_reply_as_context(service: ServiceProcess) -> None:
    stream = post_stream(service.port, {"message": "tell me a story"})
    next(stream.events())
    stream.close()
    wait_for(lambda: bool(history(service)))
    status, _, body = service.request("POST", "/chat/message", {"message": "go on"})
    assert (status, body["response"]) == (
        200,
        'You said: "go on". This is turn 2 of our conversation.',
    )


def test_messages_to_one_conversation_are_answered_in_arrival_order(
    start_service: StartService,
) -> None:
    service = start_service(env={"CHAT_ASSISTANT_LATENCY_MS": "300", **LIMITS_OFF})
    replies: dict[int, str] = {}

    def send(number: int) -> None:
        status, _, body = service.request(
            "POST", "/chat/message", {"message": f"m{number}", "conversation_id": "queue"}
        )
        assert status == 200
        replies[number] = body["response"]

    threads = []
    for number in range(5):
        threads.append(threading.Thread(target=send, args=(number,)))
        threads[-1].start()
        time.sleep(0.05)  # arrival order 0..4; a reply takes 0.3 s, so all five overlap
    for thread in threads:
        thread.join(60)
    assert replies == {
        n: f'You said: "m{n}". This is turn {n + 1} of our conversation.' for n in range(5)
    }
    assert [item["user"] for item in history(service, "queue")] == [f"m{n}" for n in range(5)]


def test_errors_before_the_stream_are_plain_json(service: ServiceProcess) -> None:
    stream = post_stream(service.port, {"message": "   "})
    assert stream.status == 400
    assert stream.header("Content-Type") == "application/json; charset=utf-8"
    assert stream.body() == {"status": "error", "message": "Field 'message' must not be blank."}
