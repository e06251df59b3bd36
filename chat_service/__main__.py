"""Command line: ``chat-service`` / ``python -m chat_service``.

Settings come from CHAT_* variables; ``--host``, ``--port`` and ``--db`` override them.
Any start-up failure (bad setting, unopenable database, port in use) prints one line on
stderr and exits non-zero, never a traceback.

The port is bound before anything else starts: a port in use fails at once, before a
database is created or migrated, and clients that connect while start-up runs (a migration,
a database still coming up) wait in the listen backlog instead of being refused.

The event loop is uvloop when it is installed, else asyncio's own (CHAT_EVENT_LOOP, see
event_loop.py); the "serving on" log line names the one in use (``event_loop``).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from opentelemetry.sdk.resources import SERVICE_NAME

from chat_service import __version__
from chat_service.api.access_log import ACCESS_LOGGER, JsonAccessLogger
from chat_service.api.server import connection_gate, run
from chat_service.app import create_app
from chat_service.config import ConfigError, Settings
from chat_service.event_loop import choose_event_loop
from chat_service.file_limit import raise_file_limit
from chat_service.gc_policy import long_lived_ctx
from chat_service.store import StoreOpenError
from chat_service.telemetry.logs import configure_logging
from chat_service.telemetry.metrics import Metrics
from chat_service.telemetry.tracing import build_resource, configure_tracing

log = logging.getLogger("chat_service")

EXIT_CONFIG = 2
EXIT_STARTUP = 1
# Connections the kernel holds while nobody accepts them yet. aiohttp's default, 128,
# overflowed when a thousand streamed chats opened at once (bench scenario g): each dropped
# connection waits for TCP's retry, seconds added to its first token. Linux caps it at
# net.core.somaxconn (4096 on current kernels).
BACKLOG = 2048


class _OneLineParser(argparse.ArgumentParser):
    """Report a bad flag in one line, like every other start-up error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see --help)\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog="chat-service",
        description="Serve the chat API (and the frontend, with CHAT_FRONTEND_DIR).",
        epilog="Every option can also be set with its CHAT_* environment variable.",
    )
    parser.add_argument("--host", help="address to listen on (CHAT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (CHAT_PORT, default 8000)")
    parser.add_argument(
        "--db", type=Path, help="SQLite database file (CHAT_DB_PATH, default chat.db)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    settings = Settings.from_env(environ)
    overrides = {"host": args.host, "port": args.port, "db_path": args.db}
    return settings.replace(**{k: v for k, v in overrides.items() if v is not None})


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on every address ``host`` resolves to, as asyncio would bind them."""
    addresses = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args, os.environ)
        event_loop = choose_event_loop(settings.event_loop)
        service_name = str(build_resource().attributes[SERVICE_NAME])
        JsonAccessLogger.configure(
            configure_logging(settings.log_level_number, service_name), service_name
        )
        metrics = Metrics()
        tracing = configure_tracing(
            os.environ,
            metrics.spans_dropped.inc,
            capture_content=settings.capture_content,
        )
    except ConfigError as exc:
        print(f"chat-service: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    descriptors = raise_file_limit()
    # Everything imported and built so far lives as long as the process: move it out of the
    # collector's sight, so full collections only walk what requests allocate (shorter
    # pauses, lower tail latency; see bench/README.md). What lives long from then on is
    # frozen as it proves to (gc_policy.py).
    gc.collect()
    gc.freeze()
    try:
        sockets = listen(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"chat-service: cannot listen on {settings.host}:{settings.port}: {reason}",
            file=sys.stderr,
        )
        return EXIT_STARTUP
    port = sockets[0].getsockname()[1]  # the one the system chose, for port 0
    try:
        app = create_app(settings, metrics=metrics, tracing=tracing)
        app.cleanup_ctx.append(long_lived_ctx(metrics.registry))
        gate = connection_gate(
            settings.max_connections,
            settings.max_connections_per_address,
            descriptors,
            trusted=[ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies],
        )
        run(
            app,
            loop=event_loop.new_loop(),  # closed by run, whichever way it returns
            sockets=sockets,
            gate=gate,
            shutdown_timeout=settings.shutdown_timeout_s,
            backlog=BACKLOG,
            on_serving=lambda: log.info(
                "serving on http://%s:%d",
                settings.host,
                port,
                extra={
                    "version": __version__,
                    "event_loop": event_loop.name,
                    "max_connections": gate.total,
                    "max_connections_per_address": gate.per_address,
                },
            ),
            # A client that closes its connection cancels its request: a reply being
            # generated for it stops at once (see api/streaming.py).
            handler_cancellation=True,
            access_log_class=JsonAccessLogger,
            access_log=logging.getLogger(ACCESS_LOGGER),
        )
    except StoreOpenError as exc:
        print(f"chat-service: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    finally:
        for sock in sockets:
            sock.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
