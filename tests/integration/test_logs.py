"""Logs as a log pipeline reads them: JSON lines on stdout, no user text by default."""

from __future__ import annotations

import json
import re

from tests.conftest import StartService

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SECRET = "my secret diary entry"


def test_records_are_json_with_trace_ids_and_no_content(start_service: StartService) -> None:
    service = start_service()
    service.request("POST", "/chat/message", {"message": SECRET, "conversation_id": "diary"})
    service.request("POST", "/chat/message", {"message": 42})
    service.stop()

    records = [json.loads(line) for line in service.stdout().splitlines()]
    assert all(RFC3339_UTC.fullmatch(r["timestamp"]) for r in records)
    assert {r["service"] for r in records} == {"chat-service"}
    assert SECRET not in service.stdout(), "message content is not logged by default"

    access = [r for r in records if r["logger"] == "chat_service.access"]
    posts = [r for r in access if r["route"] == "/chat/message"]
    assert [r["status"] for r in posts] == [200, 400]
    assert all(isinstance(r["duration_ms"], float) for r in posts)
    # One line per request: the stored exchange's fields ride on its access-log line.
    stored = posts[0]
    assert stored["conversation_id"] == "diary"
    assert stored["message_chars"] == len(SECRET)
    assert stored["turn"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", stored["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", stored["span_id"])
    assert "conversation_id" not in posts[1], "nothing was stored for the 400"


def test_content_is_logged_when_enabled(start_service: StartService) -> None:
    service = start_service(env={"CHAT_LOG_CONTENT": "true"})
    _, _, body = service.request("POST", "/chat/message", {"message": SECRET})
    service.stop()
    records = [json.loads(line) for line in service.stdout().splitlines()]
    stored = next(r for r in records if r.get("route") == "/chat/message")
    assert stored["user_message"] == SECRET
    assert stored["ai_response"] == body["response"]


def test_log_level_filters_records(start_service: StartService) -> None:
    service = start_service(env={"CHAT_LOG_LEVEL": "WARNING"})
    service.request("POST", "/chat/message", {"message": "quiet"})
    service.stop()
    assert service.stdout() == "", "INFO records (access log included) are filtered out"


def test_an_error_is_logged_once_with_its_exception(start_service: StartService) -> None:
    service = start_service()
    service.request("POST", "/chat/message", {"message": "first"})
    import sqlite3

    with sqlite3.connect(service.db_path) as conn:
        conn.execute("DROP TABLE exchanges")
    status, headers, body = service.request("GET", "/chat/history")
    assert (status, body) == (500, {"message": "Failed to fetch chat history."})
    service.stop()
    records = [json.loads(line) for line in service.stdout().splitlines()]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["message"] == "Failed to fetch chat history."
    assert "no such table" in errors[0]["exc_info"]
    assert errors[0]["trace_id"] == headers["traceresponse"].split("-")[1]


def test_a_refused_request_says_why_under_its_request_id(start_service: StartService) -> None:
    service = start_service()
    status, headers, _ = service.request(
        "POST", "/chat/message", {"message": SECRET + " "}, headers={"X-Request-ID": "bug-7"}
    )
    assert (status, headers["X-Request-ID"]) == (200, "bug-7")
    status, _, _ = service.request("POST", "/chat/message", {"message": " "})
    assert status == 400
    _, made_up, _ = service.request("GET", "/chat/history")
    service.stop()

    records = [json.loads(line) for line in service.stdout().splitlines()]
    access = [r for r in records if r["logger"] == "chat_service.access"]
    stored, refused, history = [r for r in access if r["path"].startswith("/chat/")]
    assert stored["request_id"] == "bug-7"
    assert "error" not in stored
    assert refused["status"] == 400
    assert refused["error"] == "Field 'message' must not be blank."
    assert re.fullmatch(r"[0-9a-f]{32}", refused["request_id"])
    assert history["request_id"] == made_up["X-Request-ID"]
    assert SECRET not in service.stdout(), "the error says why, without the body"
