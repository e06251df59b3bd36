"""The HTTP server around the application: what happens before a request reaches it.

aiohttp's runner, with two additions the application cannot make for itself:

- **A gate on connections** (:class:`ConnectionGate`). Every open connection holds a file
  descriptor; a process out of them cannot accept even a health probe. So the server holds at
  most CHAT_MAX_CONNECTIONS at once (never more than the descriptor limit leaves room for) and
  at most CHAT_MAX_CONNECTIONS_PER_ADDRESS from one peer address, proxies in
  CHAT_TRUSTED_PROXIES excepted (behind NGINX every connection comes from NGINX; the
  per-caller limits of ``/chat`` tell its clients apart). A connection past either is answered
  at once, with the error shape, and closed, which frees its descriptor straight away.
- **Answers to what is not HTTP the service accepts.** aiohttp's parser refuses some requests
  before any application code runs (a malformed header line, a NUL in the path, header fields
  over the limit) and answers them with its own plain text: the bytes it could not parse
  echoed back, its version in ``Server``, none of the security headers, and a traceback in the
  log. Here they get the contract's JSON error shape, the security headers and nothing of the
  request, and their one access-log line says why, never with the request's bytes (a bearer
  token, say). Header fields may be up to 32 KiB (the access tokens of providers that
  put every group in a claim are often over aiohttp's default of 8 KiB); larger ones get 431.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from chat_service.api.errors import INTERNAL_ERROR, REQUEST_ERROR, error_response
from chat_service.api.identity import IpNetwork, is_trusted
from chat_service.api.security import secure

log = logging.getLogger(__name__)

# The longest header field (name and value) and request line accepted.
MAX_FIELD_BYTES = 32 * 1024
# How long a connection may sit without a whole request: idle between requests, or sending
# its headers a byte at a time. web.run_app's default; aiohttp's own handlers default to an
# hour, which would let a few addresses hold every connection the gate allows.
KEEPALIVE_TIMEOUT_S = 75.0
# Descriptors kept for everything but client connections: the database, the log, the
# model server's and the collector's connections, files the page serves.
RESERVED_DESCRIPTORS = 64

NOT_HTTP = "The request is not valid HTTP."
HEADERS_TOO_LARGE = (
    f"The request line or a header field is larger than {MAX_FIELD_BYTES // 1024} KiB."
)
TOO_MANY_CONNECTIONS = "The service has too many connections open; try again shortly."
TOO_MANY_FROM_ADDRESS = "Too many connections from this address; close some first."
REFUSAL_LOG_INTERVAL_S = 10.0


def _canned(status: int, reason: str, message: str, retry_after_s: int) -> bytes:
    """A whole response, written before a request is read, for a connection the gate
    refuses: no request object exists to build one the usual way."""
    body = orjson.dumps({"status": "error", "message": message})
    headers: dict[str, str] = {
        hdrs.CONTENT_TYPE: "application/json; charset=utf-8",
        hdrs.CONTENT_LENGTH: str(len(body)),
        hdrs.CONNECTION: "close",
        hdrs.RETRY_AFTER: str(retry_after_s),
    }
    secure(headers)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status} {reason}\r\n{head}\r\n".encode() + body


_FULL = _canned(503, "Service Unavailable", TOO_MANY_CONNECTIONS, 5)
_ADDRESS_FULL = _canned(429, "Too Many Requests", TOO_MANY_FROM_ADDRESS, 5)


class ConnectionGate:
    """Counts open connections, in all and per peer address, and says which to refuse."""

    def __init__(
        self,
        total: int,
        per_address: int,
        trusted: Iterable[IpNetwork] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.per_address = per_address
        self._trusted = tuple(trusted)
        self._open = 0
        self._by_address: dict[str, int] = {}
        self.refusals = 0  # since start-up
        self._logged = 0  # refusals already told of in the log
        self._clock = clock
        self._next_log = float("-inf")

    @property
    def open(self) -> int:
        return self._open

    def admit(self, address: str | None) -> bytes | None:
        """Count a new connection from ``address``: None when it may stay, else the
        response to refuse it with (it is then not counted)."""
        if self._open >= self.total:
            self._refused("total")
            return _FULL
        if address is not None and not is_trusted(address, self._trusted):
            if self._by_address.get(address, 0) >= self.per_address:
                self._refused("per_address")
                return _ADDRESS_FULL
            self._by_address[address] = self._by_address.get(address, 0) + 1
        self._open += 1
        return None

    def _refused(self, limit: str) -> None:
        """Say that connections are being refused, at most once per REFUSAL_LOG_INTERVAL_S
        with how many (a flood must not become a flood of log lines)."""
        self.refusals += 1
        now = self._clock()
        if now >= self._next_log:
            self._next_log = now + REFUSAL_LOG_INTERVAL_S
            log.warning(
                "refusing connections",
                extra={
                    "limit": limit,
                    "refused": self.refusals - self._logged,
                    "open": self._open,
                    "max_connections": self.total,
                    "max_connections_per_address": self.per_address,
                },
            )
            self._logged = self.refusals

    def leave(self, address: str | None) -> None:
        self._open -= 1
        if address is not None and (count := self._by_address.get(address)) is not None:
            if count > 1:
                self._by_address[address] = count - 1
            else:
                del self._by_address[address]


def connection_gate(
    configured_total: int,
    configured_per_address: int,
    descriptors: int,
    trusted: Iterable[IpNetwork] = (),
) -> ConnectionGate:
    """The gate for a process allowed ``descriptors`` files: at most the configured number
    of connections, fewer when the descriptors would not leave room for them and the
    service's own files; and from one address at most a quarter of those, so that no one
    address can hold every connection while others (a health probe) wait."""
    total = max(1, min(configured_total, descriptors - RESERVED_DESCRIPTORS))
    per_address = max(1, min(configured_per_address, total // 4))
    return ConnectionGate(total, per_address, trusted)


class ServiceRequestHandler(RequestHandler):
    """aiohttp's connection handler, behind the gate and with the contract's answers to
    requests its parser refuses."""

    __slots__ = ("_admitted", "_gate", "_peer")

    def __init__(self, manager: web.Server, *, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._peer: str | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        refusal = self._gate.admit(self._peer)
        if refusal is not None:
            # Answered and closed before anything is read: the descriptor is free again
            # as soon as the answer is out. aiohttp never learns of this connection.
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal)
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.leave(self._peer)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request the parser refused, or that failed outside the
        application's error handling: the error shape, the security headers, nothing of the
        request, and the request's access-log line saying why, without its bytes."""
        if status >= 500:
            log.error("request failed outside the application", exc_info=exc)
            text = INTERNAL_ERROR
        elif isinstance(exc, LineTooLong):
            status, text = 431, HEADERS_TOO_LARGE
        else:
            text = NOT_HTTP
        # Said on the request's one access-log line (the parser's message would quote it).
        if isinstance(request, web.Request):
            request[REQUEST_ERROR] = text
        if request.writer.output_size > 0:  # a response had begun: nothing more can be sent
            raise ConnectionError("a response was already being sent")
        response = error_response(status, text)
        secure(response.headers)
        response.force_close()
        return response


class ServiceServer(web.Server):
    """Makes :class:`ServiceRequestHandler` connections."""

    def __init__(self, server: web.Server, gate: ConnectionGate) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self.gate = gate

    def __call__(self) -> RequestHandler:
        return ServiceRequestHandler(self, loop=self._loop, gate=self.gate, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """aiohttp's application runner, with :class:`ServiceServer` as its server."""

    def __init__(self, app: web.Application, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(
            app,
            max_field_size=MAX_FIELD_BYTES,
            max_line_size=MAX_FIELD_BYTES,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            **kwargs,
        )
        self.gate = gate

    async def _make_server(self) -> web.Server:
        return ServiceServer(await super()._make_server(), self.gate)


def run(
    app: web.Application,
    *,
    loop: asyncio.AbstractEventLoop,
    sockets: Iterable[socket.socket],
    gate: ConnectionGate,
    shutdown_timeout: float,
    on_serving: Callable[[], None],
    backlog: int,
    **kwargs: Any,
) -> None:
    """Serve ``app`` on ``sockets`` until SIGINT or SIGTERM, then stop gracefully (requests
    in flight get ``shutdown_timeout``), and close ``loop``: ``web.run_app``'s life cycle,
    with :class:`ServiceRunner`. ``backlog``: the sockets' listen backlog (the event loop
    listens again with it). ``kwargs`` go to aiohttp's connection handlers."""

    async def serve() -> None:
        runner = ServiceRunner(
            app, gate, handle_signals=True, shutdown_timeout=shutdown_timeout, **kwargs
        )
        await runner.setup()
        try:
            for sock in sockets:
                await web.SockSite(runner, sock, backlog=backlog).start()
            on_serving()
            await asyncio.Event().wait()  # until a stop signal raises GracefulExit
        finally:
            await runner.cleanup()

    main_task = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main_task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main_task.done():
                main_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main_task)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on ``loop`` and wait for it, as asyncio.run does."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
