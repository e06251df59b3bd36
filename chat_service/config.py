"""Settings: one frozen dataclass read from CHAT_* environment variables.

Environment first (12-factor); the command line overrides the common ones. Every
invalid value raises :class:`ConfigError` with a message that names the variable,
so start-up can print one clear line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from chat_service.identity.api_keys import ApiKeys

ASSISTANTS = ("dummy", "openai")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# auto: uvloop when it is installed (the speedups extra), else asyncio's own (event_loop.py).
EVENT_LOOPS = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


# The longest model name accepted, in CHAT_MODELS and in requests.
MAX_MODEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    host: str = "127.0.0.1"
    port: int = 8000
    db_path: Path = Path("chat.db")
    # PostgreSQL instead of SQLite when set (it may hold a password: never printed).
    database_url: str | None = field(default=None, repr=False)
    database_pool_size: int = 10
    database_connect_timeout_s: float = 30.0
    # How often, at most, the key table may be rewritten to erase deleted conversations' keys
    # from PostgreSQL's files (store/postgres_shredding.py).
    database_shred_interval_s: float = 60.0
    # Seconds between the comment lines that keep an idle event stream open through proxies.
    stream_keepalive_s: float = 15.0
    log_level: str = "INFO"
    frontend_dir: Path | None = None
    max_message_chars: int = 4000
    max_body_bytes: int = 64 * 1024
    assistant: str = "dummy"
    assistant_latency_ms: int = 0
    assistant_token_ms: int = 0
    context_turns: int = 20
    # The OpenAI-compatible assistant (CHAT_ASSISTANT=openai).
    model: str | None = None
    # The models conversations may choose from (CHAT_MODEL first); empty: the server's list.
    models: tuple[str, ...] = ()
    system_prompt: str | None = None
    max_output_tokens: int | None = None
    model_timeout_s: float = 60.0
    model_max_retries: int = 2
    model_max_concurrency: int = 32
    # A caller's model calls at once, running or waiting (model_slots.py), and how long one
    # reply may take in all, from its first read to its last.
    max_replies_per_caller: int = 4
    reply_deadline_s: float = 300.0
    # Streams (streamed replies, live subscriptions) one caller, and one address, may hold.
    max_streams_per_caller: int = 16
    max_streams_per_address: int = 64
    # How long a client may take to send a request's body.
    body_timeout_s: float = 30.0
    # Connections held open at once, in all and from one peer address (api/server.py).
    max_connections: int = 4096
    max_connections_per_address: int = 256
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)  # a secret: never printed
    reply_cache_ttl_s: float = 0.0
    shutdown_timeout_s: float = 10.0
    log_content: bool = False
    capture_content: bool = False
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # secrets: never printed
    metrics_require_key: bool = False
    rate_limit_rps: float = 20.0
    rate_limit_burst: int = 40
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # The page's own sign-in (GET /chat/auth tells it): a public client at the issuer, and the
    # scopes it asks for. Without a client id the page cannot sign anyone in.
    oidc_client_id: str | None = None
    oidc_scopes: str = "openid profile email"
    event_loop: str = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"CHAT_PORT must be between 0 and 65535, got {self.port}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"CHAT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.assistant not in ASSISTANTS:
            raise ConfigError(
                f"CHAT_ASSISTANT must be one of {', '.join(ASSISTANTS)}, got {self.assistant!r}"
            )
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(
                f"CHAT_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, got {self.event_loop!r}"
            )
        if self.database_url is not None:
            _require(
                self.database_url.startswith(("postgresql://", "postgres://")),
                "CHAT_DATABASE_URL must be a postgresql:// URL",
            )
        _require(self.database_pool_size >= 2, "CHAT_DATABASE_POOL_SIZE must be at least 2")
        _require(
            self.database_connect_timeout_s > 0, "CHAT_DATABASE_CONNECT_TIMEOUT_S must be positive"
        )
        _require(
            self.database_shred_interval_s >= 1, "CHAT_DATABASE_SHRED_INTERVAL_S must be at least 1"
        )
        _require(self.stream_keepalive_s > 0, "CHAT_STREAM_KEEPALIVE_S must be positive")
        _require(self.max_message_chars >= 1, "CHAT_MAX_MESSAGE_CHARS must be at least 1")
        _require(self.max_body_bytes >= 1024, "CHAT_MAX_BODY_BYTES must be at least 1024")
        _require(self.assistant_latency_ms >= 0, "CHAT_ASSISTANT_LATENCY_MS must not be negative")
        _require(self.assistant_token_ms >= 0, "CHAT_ASSISTANT_TOKEN_MS must not be negative")
        _require(self.context_turns >= 0, "CHAT_CONTEXT_TURNS must not be negative")
        _require(self.model_timeout_s > 0, "CHAT_MODEL_TIMEOUT_S must be positive")
        _require(self.model_max_retries >= 0, "CHAT_MODEL_MAX_RETRIES must not be negative")
        _require(self.model_max_concurrency >= 1, "CHAT_MODEL_MAX_CONCURRENCY must be at least 1")
        _require(self.max_replies_per_caller >= 1, "CHAT_MAX_REPLIES_PER_CALLER must be at least 1")
        _require(self.reply_deadline_s > 0, "CHAT_REPLY_DEADLINE_S must be positive")
        _require(self.max_streams_per_caller >= 1, "CHAT_MAX_STREAMS_PER_CALLER must be at least 1")
        _require(
            self.max_streams_per_address >= self.max_streams_per_caller,
            "CHAT_MAX_STREAMS_PER_ADDRESS must be at least CHAT_MAX_STREAMS_PER_CALLER",
        )
        _require(self.body_timeout_s > 0, "CHAT_BODY_TIMEOUT_S must be positive")
        _require(self.max_connections >= 1, "CHAT_MAX_CONNECTIONS must be at least 1")
        _require(
            self.max_connections_per_address >= 1,
            "CHAT_MAX_CONNECTIONS_PER_ADDRESS must be at least 1",
        )
        _require(
            self.max_output_tokens is None or self.max_output_tokens >= 1,
            "CHAT_MAX_OUTPUT_TOKENS must be at least 1",
        )
        _require(
            self.reply_cache_ttl_s >= 0, "CHAT_REPLY_CACHE_TTL_S must not be negative (0 = off)"
        )
        for model in self.models:
            _require(
                len(model) <= MAX_MODEL_CHARS and model.isprintable(),
                f"CHAT_MODELS: {model[:MAX_MODEL_CHARS]!r} is not a model name "
                f"(printable, at most {MAX_MODEL_CHARS} characters)",
            )
        _require(
            not self.models or self.assistant == "openai",
            "CHAT_MODELS needs CHAT_ASSISTANT=openai (the dummy offers only itself)",
        )
        if self.assistant == "openai":
            _require(bool(self.model), "CHAT_ASSISTANT=openai needs CHAT_MODEL (the model to ask)")
            _require(
                bool(self.openai_api_key),
                "CHAT_ASSISTANT=openai needs OPENAI_API_KEY or OPENAI_API_KEY_FILE (servers that "
                "do not check keys, such as Ollama, accept any value)",
            )
        if self.openai_base_url is not None:
            _require(
                self.openai_base_url.startswith(("http://", "https://")),
                "OPENAI_BASE_URL must be an http:// or https:// URL",
            )
        _require(self.shutdown_timeout_s > 0, "CHAT_SHUTDOWN_TIMEOUT must be positive")
        _require(self.rate_limit_rps >= 0, "CHAT_RATE_LIMIT_RPS must not be negative (0 = off)")
        _require(self.rate_limit_burst >= 1, "CHAT_RATE_LIMIT_BURST must be at least 1")
        _require(
            not self.metrics_require_key or bool(self.api_keys),
            "CHAT_METRICS_REQUIRE_KEY needs CHAT_API_KEYS or CHAT_API_KEYS_FILE",
        )
        try:
            ApiKeys(self.api_keys)
        except ValueError as exc:
            raise ConfigError(f"CHAT_API_KEYS: {exc}") from None
        _require(
            (self.oidc_issuer is None) == (self.oidc_audience is None),
            "CHAT_OIDC_ISSUER and CHAT_OIDC_AUDIENCE go together: set both or neither",
        )
        if self.oidc_issuer is not None:
            _check_issuer(self.oidc_issuer, page_signs_in=self.oidc_client_id is not None)
        _require(
            self.oidc_client_id is None or self.oidc_issuer is not None,
            "CHAT_OIDC_CLIENT_ID is the page's client at CHAT_OIDC_ISSUER: set the issuer too",
        )
        _require(
            self.oidc_client_id is None or _PRINTABLE.fullmatch(self.oidc_client_id) is not None,
            "CHAT_OIDC_CLIENT_ID must be printable ASCII without spaces",
        )
        _check_scopes(self.oidc_scopes)
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"CHAT_TRUSTED_PROXIES has an invalid address or network: {proxy!r}"
                ) from None
        _check_cors_origins(self.cors_origins)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``CHAT_*`` variables; unset or empty ones keep their default."""
        defaults = cls()

        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError:
                raise ConfigError(f"{name} has an invalid value: {raw!r}") from None

        frontend = environ.get("CHAT_FRONTEND_DIR", "").strip()
        return cls(
            host=read("CHAT_HOST", str, defaults.host),
            port=read("CHAT_PORT", int, defaults.port),
            db_path=read("CHAT_DB_PATH", Path, defaults.db_path),
            database_url=_read_secret(environ, "CHAT_DATABASE_URL"),
            database_pool_size=read("CHAT_DATABASE_POOL_SIZE", int, defaults.database_pool_size),
            database_connect_timeout_s=read(
                "CHAT_DATABASE_CONNECT_TIMEOUT_S", float, defaults.database_connect_timeout_s
            ),
            database_shred_interval_s=read(
                "CHAT_DATABASE_SHRED_INTERVAL_S", float, defaults.database_shred_interval_s
            ),
            stream_keepalive_s=read("CHAT_STREAM_KEEPALIVE_S", float, defaults.stream_keepalive_s),
            log_level=read("CHAT_LOG_LEVEL", str.upper, defaults.log_level),
            frontend_dir=Path(frontend) if frontend else None,
            max_message_chars=read("CHAT_MAX_MESSAGE_CHARS", int, defaults.max_message_chars),
            max_body_bytes=read("CHAT_MAX_BODY_BYTES", int, defaults.max_body_bytes),
            assistant=read("CHAT_ASSISTANT", str.lower, defaults.assistant),
            assistant_latency_ms=read(
                "CHAT_ASSISTANT_LATENCY_MS", int, defaults.assistant_latency_ms
            ),
            assistant_token_ms=read("CHAT_ASSISTANT_TOKEN_MS", int, defaults.assistant_token_ms),
            context_turns=read("CHAT_CONTEXT_TURNS", int, defaults.context_turns),
            model=read("CHAT_MODEL", str, defaults.model),
            models=read("CHAT_MODELS", _split_list, defaults.models),
            system_prompt=environ.get("CHAT_SYSTEM_PROMPT", "").strip() or None,
            max_output_tokens=read("CHAT_MAX_OUTPUT_TOKENS", int, defaults.max_output_tokens),
            model_timeout_s=read("CHAT_MODEL_TIMEOUT_S", float, defaults.model_timeout_s),
            model_max_retries=read("CHAT_MODEL_MAX_RETRIES", int, defaults.model_max_retries),
            model_max_concurrency=read(
                "CHAT_MODEL_MAX_CONCURRENCY", int, defaults.model_max_concurrency
            ),
            max_replies_per_caller=read(
                "CHAT_MAX_REPLIES_PER_CALLER", int, defaults.max_replies_per_caller
            ),
            reply_deadline_s=read("CHAT_REPLY_DEADLINE_S", float, defaults.reply_deadline_s),
            max_streams_per_caller=read(
                "CHAT_MAX_STREAMS_PER_CALLER", int, defaults.max_streams_per_caller
            ),
            max_streams_per_address=read(
                "CHAT_MAX_STREAMS_PER_ADDRESS", int, defaults.max_streams_per_address
            ),
            body_timeout_s=read("CHAT_BODY_TIMEOUT_S", float, defaults.body_timeout_s),
            max_connections=read("CHAT_MAX_CONNECTIONS", int, defaults.max_connections),
            max_connections_per_address=read(
                "CHAT_MAX_CONNECTIONS_PER_ADDRESS", int, defaults.max_connections_per_address
            ),
            openai_base_url=read("OPENAI_BASE_URL", str, defaults.openai_base_url),
            openai_api_key=_read_secret(environ, "OPENAI_API_KEY"),
            reply_cache_ttl_s=read("CHAT_REPLY_CACHE_TTL_S", float, defaults.reply_cache_ttl_s),
            shutdown_timeout_s=read("CHAT_SHUTDOWN_TIMEOUT", float, defaults.shutdown_timeout_s),
            log_content=read("CHAT_LOG_CONTENT", parse_bool, defaults.log_content),
            capture_content=read("CHAT_CAPTURE_CONTENT", parse_bool, defaults.capture_content),
            api_keys=_read_api_keys(environ),
            metrics_require_key=read(
                "CHAT_METRICS_REQUIRE_KEY", parse_bool, defaults.metrics_require_key
            ),
            rate_limit_rps=read("CHAT_RATE_LIMIT_RPS", float, defaults.rate_limit_rps),
            rate_limit_burst=read("CHAT_RATE_LIMIT_BURST", int, defaults.rate_limit_burst),
            trusted_proxies=read("CHAT_TRUSTED_PROXIES", _split_list, defaults.trusted_proxies),
            cors_origins=read("CHAT_CORS_ORIGINS", _split_list, defaults.cors_origins),
            oidc_issuer=environ.get("CHAT_OIDC_ISSUER", "").strip() or None,
            oidc_audience=environ.get("CHAT_OIDC_AUDIENCE", "").strip() or None,
            oidc_client_id=environ.get("CHAT_OIDC_CLIENT_ID", "").strip() or None,
            oidc_scopes=" ".join(environ.get("CHAT_OIDC_SCOPES", "").split())
            or defaults.oidc_scopes,
            event_loop=read("CHAT_EVENT_LOOP", str.lower, defaults.event_loop),
        )

    def replace(self, **changes: object) -> Settings:
        """Return a copy with ``changes`` applied (and validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def log_level_number(self) -> int:
        return logging.getLevelName(self.log_level)  # type: ignore[no-any-return]


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# RFC 6749 section 3.3: a scope token is printable ASCII but space, '"' and '\\'.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,255}")


# What an issuer URL may hold, anywhere: its origin is quoted in the page's
# Content-Security-Policy (api/security.py), where a space, ';', ',' or quote would add
# sources or directives. Brackets only around an IPv6 address.
_ISSUER_CHARACTERS = re.compile(r"[A-Za-z0-9._~%/:\[\]-]+")
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def _check_issuer(issuer: str, *, page_signs_in: bool) -> None:
    """An http(s) URL of a host by name or address, without user info, query or fragment.
    Keys fetched over plain HTTP could be swapped on the way: http only on loopback."""
    not_https = (
        "CHAT_OIDC_ISSUER must be an https:// URL (http:// only on this machine: "
        "localhost, 127.0.0.1, [::1])"
    )
    wrong = "CHAT_OIDC_ISSUER must be an issuer's URL: https://, a host name or address"
    _require(_ISSUER_CHARACTERS.fullmatch(issuer) is not None, f"{wrong}, a port and a path")
    parts = urlsplit(issuer)
    _require(parts.scheme in ("https", "http"), not_https)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{wrong}, and a port from 1 to 65535") from None
    host = parts.hostname or ""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    _require(
        (address is not None or _HOST_NAME.fullmatch(host) is not None)
        and port != 0
        and "[" not in parts.path + parts.netloc.replace(f"[{host}]", ""),
        f"{wrong} (letters, digits, '-' and '.'), an optional port and a path",
    )
    _require(parts.scheme == "https" or host in LOOPBACK_HOSTS, not_https)
    # CSP host sources cannot name an IPv6 address, so the page could not reach the issuer.
    _require(
        not page_signs_in or not isinstance(address, ipaddress.IPv6Address),
        "CHAT_OIDC_CLIENT_ID: the page cannot sign in at an issuer named by an IPv6 address "
        "(a Content-Security-Policy cannot name one); give the issuer a host name",
    )


def _check_scopes(scopes: str) -> None:
    """Space-separated scope tokens, ``openid`` among them: without it the provider signs
    nobody in, it only authorizes."""
    tokens = scopes.split(" ")
    _require(
        all(_SCOPE_TOKEN.fullmatch(token) for token in tokens),
        "CHAT_OIDC_SCOPES must be scope names separated by spaces "
        "(printable ASCII, no quotes or backslashes)",
    )
    _require("openid" in tokens, "CHAT_OIDC_SCOPES must include openid")


def _check_cors_origins(origins: tuple[str, ...]) -> None:
    """Each entry is compared with the browser's ``Origin`` header as it is, so it must be
    written as browsers send it; ``*`` (every origin) only alone, where others add nothing."""
    if "*" in origins:
        _require(
            origins == ("*",), "CHAT_CORS_ORIGINS: '*' allows every origin; list nothing beside it"
        )
        return
    for origin in origins:
        expected = serialized_origin(origin)
        if origin != expected:
            hint = f"; did you mean {expected!r}?" if expected else ""
            raise ConfigError(
                f"CHAT_CORS_ORIGINS: {origin!r} is not an origin as browsers send it "
                f"(http(s)://host[:port], no path, no default port){hint}"
            )


def serialized_origin(value: str) -> str | None:
    """``value`` as a browser serializes an origin (lowercase scheme and host, no default
    port, nothing after the port), or None if it is no http(s) origin at all."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or not host
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or "?" in value
        or "#" in value
    ):
        return None
    if ":" in host:
        host = f"[{host}]"
    default_port = 80 if parts.scheme == "http" else 443
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def _read_api_keys(environ: Mapping[str, str]) -> tuple[str, ...]:
    """CHAT_API_KEYS (comma-separated) plus CHAT_API_KEYS_FILE (one per line, # comments);
    each entry a key or ``name:key``."""
    keys = list(_split_list(environ.get("CHAT_API_KEYS", "")))
    if file_name := environ.get("CHAT_API_KEYS_FILE", "").strip():
        try:
            text = Path(file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"CHAT_API_KEYS_FILE cannot be read: {exc}") from None
        keys += [
            line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
        ]
    return tuple(dict.fromkeys(keys))


def _read_secret(environ: Mapping[str, str], name: str) -> str | None:
    """``name``, or the content of the file ``name``_FILE names (a mounted secret)."""
    if value := environ.get(name, "").strip():
        return value
    if file_name := environ.get(f"{name}_FILE", "").strip():
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}_FILE cannot be read: {exc}") from None
        if not value:
            raise ConfigError(f"{name}_FILE is empty: {file_name}")
        return value
    return None


def parse_bool(raw: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off``, any case; anything else is an error."""
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(raw)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
