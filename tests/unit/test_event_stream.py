"""A reply's server-sent events (chat_service/api/event_stream.py), on a real aiohttp server:
the bytes of each event, the headers, the keep-alive comment and the stalled-client timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from chat_service.api.event_stream import SEND_TIMEOUT_S, EventStream, KeepAlive

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


def app_streaming(
    script: Callable[[EventStream], Awaitable[None]], *, keepalive_s: float = 15.0
) -> tuple[web.Application, dict[str, object]]:
    seen: dict[str, object] = {}
    keepalive = KeepAlive(keepalive_s)
    seen["keepalive"] = keepalive

    async def handler(request: web.Request) -> web.StreamResponse:
        events = EventStream(request, keepalive)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None and sock.family not in (socket.AF_INET, socket.AF_INET6):
            sock = None  # no TCP options to look at
        if USER_TIMEOUT is not None and sock is not None:
            seen["before"] = sock.getsockopt(socket.IPPROTO_TCP, USER_TIMEOUT)
        await events.open()
        if USER_TIMEOUT is not None and sock is not None:
            seen["during"] = sock.getsockopt(socket.IPPROTO_TCP, USER_TIMEOUT)
        try:
            await script(events)
        finally:
            events.close()
        if USER_TIMEOUT is not None and sock is not None:
            seen["after"] = sock.getsockopt(socket.IPPROTO_TCP, USER_TIMEOUT)
        return events.response

    app = web.Application()
    app.router.add_get("/", handler)
    return app, seen


async def test_each_event_is_its_name_id_and_one_data_line(aiohttp_client: MakeClient) -> None:
    async def script(events: EventStream) -> None:
        await events.send(b"delta", b'{"text":"a\\nb"}')
        await events.send(b"done", b'{"status":"Success"}', "t7.1")

    app, seen = app_streaming(script)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert await response.read() == (
        b'event: delta\ndata: {"text":"a\\nb"}\n\n'
        b'event: done\nid: t7.1\ndata: {"status":"Success"}\n\n'
    )
    if USER_TIMEOUT is not None:
        assert seen["during"] == int(SEND_TIMEOUT_S * 1000), "a stalled client is dropped"
        assert seen["after"] == seen["before"], "and the connection's own is put back"


async def test_a_comment_keeps_an_idle_stream_open(aiohttp_client: MakeClient) -> None:
    async def script(events: EventStream) -> None:
        await asyncio.sleep(0.35)
        await events.send(b"done", b"{}")

    app, _ = app_streaming(script, keepalive_s=0.1)
    client = await aiohttp_client(app)
    body = await (await client.get("/")).read()
    assert body.endswith(b"event: done\ndata: {}\n\n")
    assert 2 <= body.count(b": ping\n\n") <= 3, body


async def test_no_comment_while_events_flow(aiohttp_client: MakeClient) -> None:
    """Each event counts as a sign of life: the keep-alive comes only after ``keepalive_s``
    without one, and a write does not re-arm a timer (it is moved on when it fires)."""

    async def script(events: EventStream) -> None:
        for n in range(8):
            await events.send(b"delta", b"%d" % n)
            await asyncio.sleep(0.02)

    # Ten times the gap between events: a busy CI machine stretched 50 ms gaps past 150 ms.
    app, _ = app_streaming(script, keepalive_s=0.5)
    client = await aiohttp_client(app)
    body = await (await client.get("/")).read()
    assert b": ping" not in body
    assert body.count(b"event: delta") == 8


async def test_closing_stops_the_keepalive(aiohttp_client: MakeClient) -> None:
    app, seen = app_streaming(lambda events: asyncio.sleep(0), keepalive_s=0.05)
    keepalive = seen["keepalive"]
    assert isinstance(keepalive, KeepAlive)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).read() == b""
    assert len(keepalive) == 0
    assert keepalive._timer is None, "no stream left: no timer"


async def test_one_timer_keeps_every_open_stream_alive(aiohttp_client: MakeClient) -> None:
    open_streams: list[int] = []
    keepalives: list[KeepAlive] = []

    async def script(events: EventStream) -> None:
        await asyncio.sleep(0.3)
        open_streams.append(len(keepalives[0]))
        await events.send(b"done", b"{}")

    app, seen = app_streaming(script, keepalive_s=0.1)
    keepalive = seen["keepalive"]
    assert isinstance(keepalive, KeepAlive)
    keepalives.append(keepalive)
    client = await aiohttp_client(app)

    async def body() -> bytes:
        return await (await client.get("/")).read()

    bodies = await asyncio.gather(body(), body(), body())
    assert max(open_streams) == 3, "the three streams share the one keep-alive"
    for each in bodies:
        assert each.count(b": ping\n\n") >= 1, each
        assert each.endswith(b"event: done\ndata: {}\n\n")
    assert keepalive._timer is None


async def test_a_closed_stream_is_not_pinged(aiohttp_client: MakeClient) -> None:
    """A round of comments may reach a stream that closed after the round began."""

    async def script(events: EventStream) -> None:
        await events.send(b"done", b"{}")
        events.close()
        await events.ping()

    app, _ = app_streaming(script)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).read() == b"event: done\ndata: {}\n\n"


async def test_a_client_that_is_not_reading_is_not_pinged(aiohttp_client: MakeClient) -> None:
    """The comment would only queue behind what the client has not read: it is left out."""
    big = b"x" * (32 * 2**20)  # more than the kernel's buffers hold
    pinged: list[bool] = []

    async def script(events: EventStream) -> None:
        sending = asyncio.create_task(events.send(b"big", big))
        await asyncio.sleep(0.2)  # the client is not reading: the write is queued
        before = events.written_at
        await events.ping()
        pinged.append(events.written_at != before)
        await sending

    app, _ = app_streaming(script)
    client = await aiohttp_client(app)
    response = await client.get("/")
    await asyncio.sleep(0.4)
    body = await response.read()
    assert pinged == [False]
    assert body.endswith(big + b"\n\n")
    assert b": ping" not in body


async def test_a_comment_follows_the_last_event_once_idle(aiohttp_client: MakeClient) -> None:
    """The keep-alive looks again when it would be due after each write, so once the events
    stop, a comment comes after ``keepalive_s``."""

    async def script(events: EventStream) -> None:
        for n in range(6):
            await events.send(b"delta", b"%d" % n)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await events.send(b"done", b"{}")

    app, _ = app_streaming(script, keepalive_s=0.15)
    client = await aiohttp_client(app)
    body = await (await client.get("/")).read()
    flowing, _, idle = body.partition(b"event: delta\ndata: 5\n\n")
    assert b": ping" not in flowing
    assert idle.count(b": ping\n\n") >= 2, body
    assert idle.endswith(b"event: done\ndata: {}\n\n")


async def test_a_stream_never_opened_closes_quietly(aiohttp_client: MakeClient) -> None:
    """A request that fails before its stream opens (the client gone) still closes it, once
    or twice: nothing was started, nothing is stopped."""

    async def handler(request: web.Request) -> web.Response:
        events = EventStream(request, KeepAlive(1.0))
        events.close()
        events.close()
        return web.Response(text=f"prepared: {events.response.prepared}")

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).text() == "prepared: False"


async def test_a_stream_over_a_unix_socket_leaves_the_socket_alone(tmp_path: Path) -> None:
    """Only TCP has a user timeout: over a Unix socket (NGINX to the service, say) the
    stream is written the same and no TCP option is touched."""

    async def script(events: EventStream) -> None:
        await events.send(b"done", b"{}")

    app, seen = app_streaming(script)
    path = str(tmp_path / "chat.sock")
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.UnixSite(runner, path).start()
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session,
            session.get("http://service/") as response,
        ):
            assert await response.read() == b"event: done\ndata: {}\n\n"
    finally:
        await runner.cleanup()
    assert set(seen) == {"keepalive"}, "no TCP option read or set"
