"""Start-up failures print one clear line on stderr and exit non-zero, never a traceback.

The port is bound first: a port in use fails before any database is created, and a client
that connects while start-up still waits for its database is answered once it is open.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import assert_json_lines
from tests.support.postgres import PostgresServer
from tests.support.service import command, free_port, service_env


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
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
    return result


def run_to_exit(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = run(tmp_path, *args, env=env)
    return result.returncode, result.stderr


def log_messages(stdout: str) -> list[str]:
    return [json.loads(line)["message"] for line in stdout.splitlines()]


def assert_one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_unopenable_database_path(tmp_path: Path) -> None:
    db = tmp_path / "no-such-dir" / "chat.db"
    result = run(tmp_path, "--port", str(free_port()), "--db", str(db))
    assert result.returncode != 0
    line = assert_one_line(result.stderr)
    assert "cannot open database" in line
    assert str(db) in line
    # aiohttp shuts the app down after a failed start-up too; nothing was being served.
    messages = log_messages(result.stdout)
    assert not any("draining" in message for message in messages), messages


def test_database_that_is_a_directory(tmp_path: Path) -> None:
    code, stderr = run_to_exit(tmp_path, "--port", str(free_port()), "--db", str(tmp_path))
    assert code != 0
    assert "cannot open database" in assert_one_line(stderr)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run(tmp_path, "--port", str(port), "--db", str(tmp_path / "c.db"))
    assert result.returncode == 1
    line = assert_one_line(result.stderr)
    assert line == f"chat-service: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert not (tmp_path / "c.db").exists(), "the port is tried before the database is made"
    assert list(tmp_path.iterdir()) == []
    assert not any("draining" in message for message in log_messages(result.stdout))


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    code, stderr = run_to_exit(tmp_path, "--host", "no-such-host.invalid", "--port", "8000")
    assert code == 1
    assert "cannot listen on no-such-host.invalid:8000" in assert_one_line(stderr)
    assert not (tmp_path / "chat.db").exists()


def request_while_starting(port: int, timeout: float) -> socket.socket:
    """Connect as soon as the port accepts, and send a request."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    return client


def test_a_client_of_a_start_up_waiting_for_its_database_is_answered(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The port listens while start-up waits for PostgreSQL; the request waits in the
    backlog and is answered once the database is there, not refused."""
    postgres_server.stop()
    port = free_port()
    env = {"CHAT_DATABASE_URL": postgres_url, "CHAT_DATABASE_CONNECT_TIMEOUT_S": "30"}
    with (tmp_path / "stdout").open("wb") as out:
        process = subprocess.Popen(
            command("--port", str(port)),
            env=service_env(env),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    try:
        client = request_while_starting(port, timeout=20)
        with client:
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.recv(1)  # no answer while the database is down
            assert process.poll() is None
            postgres_server.start()
            client.settimeout(30)
            answer = b""
            while chunk := client.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
        assert answer.endswith(b'{"status":"ok"}'), answer[-200:]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    messages = log_messages((tmp_path / "stdout").read_text())
    assert messages.index("draining: finishing in-flight requests") > messages.index(
        f"serving on http://127.0.0.1:{port}"
    )


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
