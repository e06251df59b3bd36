"""Settings from the environment: defaults, parsing, validation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop

from chat_service.__main__ import load_settings, parse_args
from chat_service.config import ConfigError, Settings
from chat_service.event_loop import choose_event_loop


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
        ({"CHAT_ASSISTANT_TOKEN_MS": "-1"}, "CHAT_ASSISTANT_TOKEN_MS must not be negative"),
        ({"CHAT_MODEL_TIMEOUT_S": "0"}, "CHAT_MODEL_TIMEOUT_S must be positive"),
        ({"CHAT_MODEL_MAX_RETRIES": "-1"}, "CHAT_MODEL_MAX_RETRIES must not be negative"),
        ({"CHAT_MODEL_MAX_CONCURRENCY": "0"}, "CHAT_MODEL_MAX_CONCURRENCY must be at least 1"),
        ({"CHAT_MAX_OUTPUT_TOKENS": "0"}, "CHAT_MAX_OUTPUT_TOKENS must be at least 1"),
        ({"CHAT_REPLY_CACHE_TTL_S": "-1"}, "CHAT_REPLY_CACHE_TTL_S must not be negative"),
        ({"OPENAI_BASE_URL": "localhost:11434"}, "OPENAI_BASE_URL must be an http"),
        ({"CHAT_ASSISTANT": "openai", "OPENAI_API_KEY": "k"}, "needs CHAT_MODEL"),
        ({"CHAT_ASSISTANT": "openai", "CHAT_MODEL": "m"}, "needs OPENAI_API_KEY"),
        ({"CHAT_DATABASE_URL": "mysql://db/chat"}, "CHAT_DATABASE_URL must be a postgresql://"),
        ({"CHAT_DATABASE_POOL_SIZE": "1"}, "CHAT_DATABASE_POOL_SIZE must be at least 2"),
        (
            {"CHAT_DATABASE_SHRED_INTERVAL_S": "0.5"},
            "CHAT_DATABASE_SHRED_INTERVAL_S must be at least 1",
        ),
        ({"CHAT_STREAM_KEEPALIVE_S": "0"}, "CHAT_STREAM_KEEPALIVE_S must be positive"),
        ({"CHAT_DATABASE_CONNECT_TIMEOUT_S": "0"}, "CHAT_DATABASE_CONNECT_TIMEOUT_S must be pos"),
        ({"CHAT_OIDC_ISSUER": "https://sso.example"}, "CHAT_OIDC_ISSUER and CHAT_OIDC_AUDIENCE"),
        ({"CHAT_OIDC_AUDIENCE": "chat"}, "CHAT_OIDC_ISSUER and CHAT_OIDC_AUDIENCE go together"),
        (
            {"CHAT_OIDC_ISSUER": "http://sso.example", "CHAT_OIDC_AUDIENCE": "chat"},
            "CHAT_OIDC_ISSUER must be an https:// URL",
        ),
        (
            {"CHAT_OIDC_ISSUER": "sso.example", "CHAT_OIDC_AUDIENCE": "chat"},
            "CHAT_OIDC_ISSUER must be an https:// URL",
        ),
        ({"CHAT_API_KEYS": "alice:short"}, "the API key named 'alice' is too short"),
        ({"CHAT_EVENT_LOOP": "trio"}, "CHAT_EVENT_LOOP must be one of auto, asyncio, uvloop"),
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


def test_model_settings() -> None:
    settings = Settings.from_env(
        {
            "CHAT_ASSISTANT": "OpenAI",
            "CHAT_MODEL": "llama3.2",
            "CHAT_SYSTEM_PROMPT": "  Be brief.  ",
            "CHAT_MAX_OUTPUT_TOKENS": "512",
            "CHAT_MODEL_TIMEOUT_S": "7.5",
            "CHAT_MODEL_MAX_RETRIES": "0",
            "CHAT_MODEL_MAX_CONCURRENCY": "1",
            "CHAT_REPLY_CACHE_TTL_S": "300",
            "CHAT_ASSISTANT_TOKEN_MS": "40",
            "OPENAI_BASE_URL": "http://localhost:11434/v1",
            "OPENAI_API_KEY": "ollama",
        }
    )
    assert settings.assistant == "openai"
    assert (settings.model, settings.system_prompt, settings.max_output_tokens) == (
        "llama3.2",
        "Be brief.",
        512,
    )
    assert (settings.model_timeout_s, settings.model_max_retries) == (7.5, 0)
    assert settings.model_max_concurrency == 1
    assert (settings.reply_cache_ttl_s, settings.assistant_token_ms) == (300, 40)
    assert settings.openai_base_url == "http://localhost:11434/v1"
    assert settings.openai_api_key == "ollama"


def test_model_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.model_timeout_s == 60
    assert settings.model_max_retries == 2
    assert settings.model_max_concurrency == 32
    assert settings.reply_cache_ttl_s == 0
    assert settings.assistant_token_ms == 0
    assert settings.model is settings.system_prompt is settings.openai_api_key is None


def test_the_model_key_can_come_from_a_file_and_is_never_printed(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-a-mounted-secret\n")
    env = {"CHAT_ASSISTANT": "openai", "CHAT_MODEL": "m", "OPENAI_API_KEY_FILE": str(key_file)}
    settings = Settings.from_env(env)
    assert settings.openai_api_key == "sk-from-a-mounted-secret"
    assert "sk-from" not in repr(settings)
    explicit = Settings.from_env({**env, "OPENAI_API_KEY": "sk-explicit"})
    assert explicit.openai_api_key == "sk-explicit", "the variable wins over the file"


def test_an_empty_key_file_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY_FILE is empty"):
        Settings.from_env({"OPENAI_API_KEY_FILE": str(key_file)})


def test_the_stream_keepalive() -> None:
    assert Settings().stream_keepalive_s == 15.0
    assert Settings.from_env({"CHAT_STREAM_KEEPALIVE_S": "2.5"}).stream_keepalive_s == 2.5


def test_database_settings() -> None:
    assert Settings.from_env({}).database_url is None, "SQLite unless a URL is given"
    defaults = Settings()
    assert (
        defaults.database_pool_size,
        defaults.database_connect_timeout_s,
        defaults.database_shred_interval_s,
    ) == (10, 30.0, 60.0)
    settings = Settings.from_env(
        {
            "CHAT_DATABASE_URL": "postgresql://chat:s3cret@db:5432/chat",
            "CHAT_DATABASE_POOL_SIZE": "2",
            "CHAT_DATABASE_CONNECT_TIMEOUT_S": "2.5",
            "CHAT_DATABASE_SHRED_INTERVAL_S": "1",
        }
    )
    assert settings.database_url == "postgresql://chat:s3cret@db:5432/chat"
    assert (
        settings.database_pool_size,
        settings.database_connect_timeout_s,
        settings.database_shred_interval_s,
    ) == (2, 2.5, 1.0)
    assert "s3cret" not in repr(settings), "the URL may hold a password"
    assert Settings.from_env({"CHAT_DATABASE_URL": "postgres://h/d"}).database_url == (
        "postgres://h/d"
    )


def test_the_database_url_can_come_from_a_file(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("postgresql://chat:pw@db/chat\n")
    settings = Settings.from_env({"CHAT_DATABASE_URL_FILE": str(url_file)})
    assert settings.database_url == "postgresql://chat:pw@db/chat"
    env = {"CHAT_DATABASE_URL": "postgresql://env/db", "CHAT_DATABASE_URL_FILE": str(url_file)}
    assert Settings.from_env(env).database_url == "postgresql://env/db", "the variable wins"


def test_cors_origins() -> None:
    assert Settings.from_env({}).cors_origins == (), "no other origin unless listed"
    listed = "https://app.example, http://localhost:8080,http://[::1]:3000"
    assert Settings.from_env({"CHAT_CORS_ORIGINS": listed}).cors_origins == (
        "https://app.example",
        "http://localhost:8080",
        "http://[::1]:3000",
    )
    assert Settings.from_env({"CHAT_CORS_ORIGINS": " * "}).cors_origins == ("*",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://app.example/", "did you mean 'https://app.example'"),
        ("https://App.Example", "did you mean 'https://app.example'"),
        ("https://app.example:443", "did you mean 'https://app.example'"),
        ("http://app.example:80", "did you mean 'http://app.example'"),
        ("https://app.example/chat", "'https://app.example/chat' is not an origin"),
        ("https://app.example?x=1", "is not an origin as browsers send it"),
        ("https://user@app.example", "is not an origin as browsers send it"),
        ("app.example", "'app.example' is not an origin"),
        ("ftp://app.example", "is not an origin"),
        ("https://app.example:99999", "is not an origin"),
        ("*, https://app.example", "'*' allows every origin; list nothing beside it"),
    ],
)
def test_cors_origins_must_be_written_as_browsers_send_them(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="CHAT_CORS_ORIGINS") as error:
        Settings.from_env({"CHAT_CORS_ORIGINS": value})
    assert message in str(error.value)


@pytest.mark.parametrize(
    "issuer", ["https://sso.example/realms/chat", "http://127.0.0.1:8080", "http://localhost:1"]
)
def test_an_oidc_issuer_is_https_or_on_this_machine(issuer: str) -> None:
    settings = Settings.from_env({"CHAT_OIDC_ISSUER": issuer, "CHAT_OIDC_AUDIENCE": "chat"})
    assert (settings.oidc_issuer, settings.oidc_audience) == (issuer, "chat")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "auto"), ("auto", "auto"), ("AsyncIO", "asyncio"), ("uvloop", "uvloop")],
)
def test_event_loop_setting(value: str, expected: str) -> None:
    assert Settings.from_env({"CHAT_EVENT_LOOP": value}).event_loop == expected


@pytest.mark.parametrize("setting", ["auto", "uvloop"])
def test_the_event_loop_is_uvloop_when_installed(setting: str) -> None:
    choice = choose_event_loop(setting)
    assert choice.name == "uvloop"
    loop = choice.new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_asyncio_event_loop_can_be_chosen_beside_uvloop() -> None:
    choice = choose_event_loop("asyncio")
    assert choice.name == "asyncio"
    loop = choice.new_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_without_uvloop_auto_is_asyncio_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert choose_event_loop("auto").name == "asyncio"
    with pytest.raises(
        ConfigError, match=r"^CHAT_EVENT_LOOP=uvloop but uvloop is not installed: pip install"
    ):
        choose_event_loop("uvloop")
