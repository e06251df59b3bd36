"""Settings from the environment: defaults, parsing, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_service.__main__ import load_settings, parse_args
from chat_service.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.db_path) == ("127.0.0.1", 8000, Path("chat.db"))
    assert settings.assistant == "dummy"
    assert settings.frontend_dir is None
    assert settings.max_message_chars == 4000


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "CHAT_HOST": "0.0.0.0",
            "CHAT_PORT": "9000",
            "CHAT_DB_PATH": "/data/chat.db",
            "CHAT_LOG_LEVEL": "debug",
            "CHAT_FRONTEND_DIR": "frontend",
            "CHAT_MAX_MESSAGE_CHARS": "10",
            "CHAT_MAX_BODY_BYTES": "2048",
            "CHAT_ASSISTANT": "Dummy",
            "CHAT_ASSISTANT_LATENCY_MS": "250",
            "CHAT_CONTEXT_TURNS": "5",
            "CHAT_SHUTDOWN_TIMEOUT": "2.5",
        }
    )
    assert settings == Settings(
        host="0.0.0.0",
        port=9000,
        db_path=Path("/data/chat.db"),
        log_level="DEBUG",
        frontend_dir=Path("frontend"),
        max_message_chars=10,
        max_body_bytes=2048,
        assistant="dummy",
        assistant_latency_ms=250,
        context_turns=5,
        shutdown_timeout_s=2.5,
    )


def test_empty_values_keep_defaults() -> None:
    assert Settings.from_env({"CHAT_PORT": "", "CHAT_LOG_LEVEL": "  "}) == Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_PORT": "eighty"}, "CHAT_PORT has an invalid value"),
        ({"CHAT_PORT": "70000"}, "CHAT_PORT must be between 0 and 65535"),
        ({"CHAT_PORT": "-1"}, "CHAT_PORT must be between"),
        ({"CHAT_LOG_LEVEL": "chatty"}, "CHAT_LOG_LEVEL must be one of"),
        ({"CHAT_ASSISTANT": "gpt-9"}, "CHAT_ASSISTANT must be one of dummy, openai, got 'gpt-9'"),
        ({"CHAT_MAX_MESSAGE_CHARS": "0"}, "CHAT_MAX_MESSAGE_CHARS must be at least 1"),
        ({"CHAT_MAX_BODY_BYTES": "10"}, "CHAT_MAX_BODY_BYTES must be at least 1024"),
        ({"CHAT_ASSISTANT_LATENCY_MS": "-5"}, "must not be negative"),
        ({"CHAT_SHUTDOWN_TIMEOUT": "0"}, "CHAT_SHUTDOWN_TIMEOUT must be positive"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_flags_override_the_environment() -> None:
    args = parse_args(["--host", "0.0.0.0", "--port", "8123", "--db", "/tmp/x.db"])
    settings = load_settings(args, {"CHAT_HOST": "10.0.0.1", "CHAT_PORT": "9", "CHAT_DB_PATH": "y"})
    assert (settings.host, settings.port, settings.db_path) == ("0.0.0.0", 8123, Path("/tmp/x.db"))


def test_unset_flags_leave_the_environment() -> None:
    settings = load_settings(parse_args([]), {"CHAT_PORT": "9001"})
    assert settings.port == 9001
