"""Hostile and malformed input against the real process: the right 4xx, nothing stored."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.conftest import StartService
from tests.support.service import ServiceProcess

ERROR_KEYS = {"status", "message"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    from tests.support.service import free_port, service_env

    workdir = tmp_path_factory.mktemp("bad-input")
    process = ServiceProcess(
        port=free_port(),
        db_path=workdir / "chat.db",
        env=service_env({"CHAT_RATE_LIMIT_RPS": "0"}),
        workdir=workdir,
    ).start()
    yield process
    process.kill()


def raw_post(
    service: ServiceProcess,
    body: bytes,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/chat/message",
            body=iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
            if chunked
            else body,
            headers=headers or {},
            encode_chunked=chunked,
        )
        response = conn.getresponse()
        assert response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def nothing_stored(service: ServiceProcess) -> bool:
    status, _, history = service.request("GET", "/chat/history")
    return status == 200 and history == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"message": "\xff\xfe"}', "not valid UTF-8"),
        (b'{"message": "nul \x00 raw"}', "not valid JSON"),
        (b'{"message": "nul \\u0000 escaped"}', "NUL characters"),
        (b'{"message": "lone \\ud800 surrogate"}', "valid Unicode"),
        (b'{"message": "a", "message": "b"}', "duplicate key"),
        (b'{"message": {"nested": ' * 2000 + b"1" + b"}}" * 2000, "not valid JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
        (b'{"message": "' + b"x" * 4001 + b'"}', "at most 4000 characters"),
    ],
    ids=[
        "invalid-utf8",
        "raw-nul",
        "escaped-nul",
        "lone-surrogate",
        "duplicate-keys",
        "deep-objects",
        "deep-arrays",
        "too-long",
    ],
)
def test_malformed_bodies_are_400(service: ServiceProcess, body: bytes, expected: str) -> None:
    status, response = raw_post(service, body, {"Content-Type": "application/json"})
    assert status == 400
    assert set(response) == ERROR_KEYS
    assert expected in str(response["message"])
    assert nothing_stored(service)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_ten_megabyte_body_is_413(service: ServiceProcess, chunked: bool) -> None:
    body = b'{"message": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    status, response = raw_post(service, body, {"Content-Type": "application/json"}, chunked)
    assert status == 413
    assert response == {"status": "error", "message": "Request body is larger than 65536 bytes."}
    assert nothing_stored(service)


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=0",
        "limit=1000000000",
        "limit=" + "9" * 5000,
        "before=abc",
        "before=1e9",
        "before=" + "7" * 5000,
        "before=t" + "7" * 5000,
        "conversation_id=" + "c" * 5000,
        "limit=%00",
    ],
    ids=lambda q: q[:24],
)
def test_bad_query_values_are_400(service: ServiceProcess, query: str) -> None:
    status, _, body = service.request("GET", "/chat/history?" + query)
    assert status == 400
    assert set(body) == ERROR_KEYS


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
)
def test_content_type_is_not_required(start_service: StartService, headers: dict[str, str]) -> None:
    """Documented behaviour: the body is parsed as JSON whatever the Content-Type says."""
    service = start_service()
    status, response = raw_post(service, b'{"message": "typed loosely"}', headers)
    assert status == 200
    assert response["status"] == "Success"


UNICODE = [
    "emoji 😀🧪👩🏽‍🚀🏳️‍🌈",
    "RTL: שלום עולם — مرحبا بالعالم",
    "combining: e\u0301 a\u0308 \u0915\u094d\u0937",
    "4-byte: 𝄞 𐍈 𠜎 🀄",
    "mixed\tcontrols\nand newlines\r\n",
    "zero width: a\u200bb\u200dc\ufeffd",
]


def test_unicode_round_trips_exactly(start_service: StartService) -> None:
    service = start_service()
    for text in UNICODE:
        status, _, body = service.request("POST", "/chat/message", {"message": text})
        assert status == 200
        assert text.strip() in body["response"]
    # Also as raw UTF-8 (json.dumps above escapes to ASCII).
    raw = "raw UTF-8: ñ 日本語 😀"
    assert raw_post(service, json.dumps({"message": raw}, ensure_ascii=False).encode())[0] == 200
    _, _, history = service.request("GET", "/chat/history")
    assert [item["user"] for item in history] == [*UNICODE, raw]
