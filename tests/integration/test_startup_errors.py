"""Start-up failures print one clear line on stderr and exit non-zero, never a traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_json_lines
from tests.support.service import command, free_port, service_env


def run_to_exit(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        command(*args),
        env=service_env(env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_json_lines(result.stdout)
    return result.returncode, result.stderr


def assert_one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_unopenable_database_path(tmp_path: Path) -> None:
    db = tmp_path / "no-such-dir" / "chat.db"
    code, stderr = run_to_exit(tmp_path, "--port", str(free_port()), "--db", str(db))
    assert code != 0
    line = assert_one_line(stderr)
    assert "cannot open database" in line
    assert str(db) in line


def test_database_that_is_a_directory(tmp_path: Path) -> None:
    code, stderr = run_to_exit(tmp_path, "--port", str(free_port()), "--db", str(tmp_path))
    assert code != 0
    assert "cannot open database" in assert_one_line(stderr)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, stderr = run_to_exit(tmp_path, "--port", str(port), "--db", str(tmp_path / "c.db"))
    assert code != 0
    line = assert_one_line(stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "abc"], {}, "invalid int value"),
        ([], {"CHAT_PORT": "99999"}, "CHAT_PORT must be between 0 and 65535"),
        ([], {"CHAT_ASSISTANT": "nonexistent"}, "CHAT_ASSISTANT must be one of"),
        ([], {"CHAT_MAX_MESSAGE_CHARS": "lots"}, "CHAT_MAX_MESSAGE_CHARS has an invalid value"),
        (
            [],
            {"CHAT_ASSISTANT": "openai", "OPENAI_API_KEY": "sk-test-0123456789"},
            "CHAT_ASSISTANT=openai needs CHAT_MODEL",
        ),
        (
            [],
            {"CHAT_ASSISTANT": "openai", "CHAT_MODEL": "gpt-test"},
            "CHAT_ASSISTANT=openai needs OPENAI_API_KEY or OPENAI_API_KEY_FILE",
        ),
        (
            [],
            {"CHAT_ASSISTANT": "openai", "CHAT_MODEL": "m", "OPENAI_API_KEY_FILE": "/no/such/key"},
            "OPENAI_API_KEY_FILE cannot be read",
        ),
        ([], {"CHAT_MODEL_TIMEOUT_S": "0"}, "CHAT_MODEL_TIMEOUT_S must be positive"),
    ],
)
def test_bad_settings(tmp_path: Path, args: list[str], env: dict[str, str], expected: str) -> None:
    code, stderr = run_to_exit(tmp_path, *args, env=env)
    assert code == 2
    assert expected in assert_one_line(stderr)
    assert not (tmp_path / "chat.db").exists(), "nothing is created before settings are valid"


def test_an_unreachable_postgresql_is_retried_then_one_line(tmp_path: Path) -> None:
    url = f"postgresql://chat:hunter2-secret@127.0.0.1:{free_port()}/chat"
    env = {"CHAT_DATABASE_URL": url, "CHAT_DATABASE_CONNECT_TIMEOUT_S": "1"}
    code, stderr = run_to_exit(tmp_path, "--port", str(free_port()), env=env)
    assert code == 1
    line = assert_one_line(stderr)
    assert "cannot connect to postgresql://chat@127.0.0.1:" in line
    assert "within 1 s" in line
    assert "hunter2-secret" not in stderr, "the password is never printed"


def test_a_wrong_postgresql_url_is_a_configuration_error(tmp_path: Path) -> None:
    env = {"CHAT_DATABASE_URL": "mysql://db/chat"}
    code, stderr = run_to_exit(tmp_path, "--port", str(free_port()), env=env)
    assert code == 2
    assert "CHAT_DATABASE_URL must be a postgresql:// URL" in assert_one_line(stderr)
