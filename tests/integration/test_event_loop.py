"""The real process runs on uvloop when it is installed (the test lock installs it, as the image
does), on asyncio's own loop when CHAT_EVENT_LOOP=asyncio, and serves on either; asked for
uvloop without it, start-up stops with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import StartService
from tests.integration.test_startup_errors import assert_one_line, run_to_exit
from tests.support.service import free_port


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "uvloop"), ({"CHAT_EVENT_LOOP": "asyncio"}, "asyncio")],
    ids=["default", "asyncio"],
)
def test_the_loop_in_use_is_logged_and_serves(
    start_service: StartService, env: dict[str, str], expected: str
) -> None:
    service = start_service(env=env)
    status, _, body = service.request("POST", "/chat/message", {"message": "which loop?"})
    assert status == 200, body
    assert body["status"] == "Success"
    status, _, history = service.request("GET", "/chat/history")
    assert status == 200
    assert [(item["user"], item["AI"]) for item in history] == [("which loop?", body["response"])]
    records = [json.loads(line) for line in service.stdout().splitlines()]
    (serving,) = [r for r in records if r["message"].startswith("serving on ")]
    assert serving["event_loop"] == expected


@pytest.fixture
def without_uvloop(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which ``import uvloop`` fails, as where it is not
    installed: a package of that name earlier on the path raises ImportError."""
    shadow = tmp_path / "shadow"
    (shadow / "uvloop").mkdir(parents=True)
    (shadow / "uvloop" / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    return {"PYTHONPATH": str(shadow)}


def test_without_uvloop_the_default_is_asyncio(
    start_service: StartService, without_uvloop: dict[str, str]
) -> None:
    service = start_service(env=without_uvloop)
    assert service.request("POST", "/chat/message", {"message": "hi"})[0] == 200
    records = [json.loads(line) for line in service.stdout().splitlines()]
    (serving,) = [r for r in records if r["message"].startswith("serving on ")]
    assert serving["event_loop"] == "asyncio"


def test_uvloop_asked_for_but_missing_stops_start_up(
    tmp_path: Path, without_uvloop: dict[str, str]
) -> None:
    code, stderr = run_to_exit(
        tmp_path, "--port", str(free_port()), env={**without_uvloop, "CHAT_EVENT_LOOP": "uvloop"}
    )
    assert code == 2
    assert assert_one_line(stderr) == (
        "chat-service: configuration error: CHAT_EVENT_LOOP=uvloop but uvloop is not installed: "
        "pip install 'chat-service[speedups]', or set CHAT_EVENT_LOOP=auto"
    )
