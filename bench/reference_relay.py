"""Scenario (g)'s reference: a bare aiohttp relay, the floor of relaying a streamed reply in
Python on this machine.

``POST /chat/message`` with the service's body opens a streamed chat completion on the model
server (one pooled aiohttp session, the request body made with orjson), reads its server-sent
events as they arrive, decodes each chunk with orjson and writes its text as an ``event:
delta`` (each chunk one event, as it comes), then ``event: done`` with the contract's body.
Nothing is stored, traced, logged or limited, no retry, no context: what the service spends
beyond this, measured in the same run under the same load, is what its relay costs.
``python -m bench.reference_relay --port P --model-url URL``; ``GET /readyz`` for the
bench's readiness probe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence

import aiohttp
import orjson
from aiohttp import web

MODEL_URL = web.AppKey("model_url", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def post_message(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    upstream = {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": body["message"]}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with request.app[SESSION].post(
        request.app[MODEL_URL] + "/chat/completions",
        data=orjson.dumps(upstream),
        headers={"Content-Type": "application/json"},
    ) as model:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        reply = []
        async for line in model.content:
            if not line.startswith(b"data: {"):
                continue
            choices = orjson.loads(line[6:]).get("choices")
            text = choices[0]["delta"].get("content") if choices else None
            if text:
                reply.append(text)
                event = orjson.dumps({"text": text})
                await response.write(b"event: delta\ndata: " + event + b"\n\n")
    done = orjson.dumps({"status": "Success", "response": "".join(reply)})
    await response.write(b"event: done\ndata: " + done + b"\n\n")
    await response.write_eof()
    return response


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def model_session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


def create_app(model_url: str) -> web.Application:
    app = web.Application()
    app[MODEL_URL] = model_url.rstrip("/")
    app.cleanup_ctx.append(model_session)
    app.router.add_post("/chat/message", post_message)
    app.router.add_get("/readyz", ready)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference_relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-url", required=True, help="the model server's /v1 URL")
    args = parser.parse_args(argv)
    app = create_app(args.model_url)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
