"""The real ``chat-service`` process, driven over HTTP on a loopback port."""

from __future__ import annotations

import signal

from tests.conftest import StartService


def test_empty_history_then_post_then_history(start_service: StartService) -> None:
    service = start_service()
    assert service.request("GET", "/chat/history")[::2] == (200, [])
    status, _, body = service.request("POST", "/chat/message", {"message": "hello"})
    assert status == 200
    assert set(body) == {"status", "response"}
    assert body["status"] == "Success"
    status, _, history = service.request("GET", "/chat/history")
    assert status == 200
    assert [(item["user"], item["AI"]) for item in history] == [("hello", body["response"])]


def test_history_survives_a_restart(start_service: StartService) -> None:
    first = start_service()
    sent = [f"message {i}" for i in range(5)]
    for text in sent:
        assert first.request("POST", "/chat/message", {"message": text})[0] == 200
    assert first.stop(signal.SIGTERM) == 0

    second = start_service(db_path=first.db_path)
    status, _, history = second.request("GET", "/chat/history")
    assert status == 200
    assert [item["user"] for item in history] == sent
