"""Scenario (e): a bare aiohttp app, the ceiling of one aiohttp process on this machine.

It parses the same JSON body as ``POST /chat/message`` and answers with a reply of the
same shape and size, but stores nothing, traces nothing and logs nothing. What the
service spends beyond this is the cost of its storage, telemetry and logging.
``python -m bench.reference_app --port P``; ``GET /readyz`` for the bench's readiness probe.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from aiohttp import web


def _error(message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message}, status=400)


async def post_message(request: web.Request) -> web.Response:
    try:
        body = json.loads((await request.read()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _error("Request body is not valid JSON.")
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return _error("Field 'message' must be a non-blank string.")
    reply = f'You said: "{message.strip()}". This is turn 1 of our conversation.'
    return web.json_response({"status": "Success", "response": reply})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/chat/message", post_message)
    app.router.add_get("/readyz", ready)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
