"""An OpenAI-compatible model server for tests: the stand-in for a remote model API.

A real HTTP server (``python -m tests.support.model_server --port N``) speaking the
chat-completions wire format as OpenAI does: plain JSON completions, or ``text/event-stream``
chunks (``chat.completion.chunk``: the role first, then the content pieces, then the finish
reason, the usage chunk when ``stream_options.include_usage`` asks for it, then
``data: [DONE]``), and OpenAI's error bodies. The service's model client talks to it unmodified.

Faults are injected per request (``/_control/script``) or for all (``/_control/default``).
A behaviour is a JSON object, every field optional: ``status`` (an error status, with
OpenAI's error body; ``error_message`` may quote the presented key as ``{api_key}``),
``retry_after`` (seconds), ``reply`` or ``chunks`` (the text, or its exact pieces),
``model`` (the response's model), ``finish_reason``, ``first_chunk_delay_s`` (before
answering), ``chunk_delay_s`` or ``chunk_delays`` (before each content chunk), ``hang``
(never answer), ``hang_after_chunks`` (stall after that many content chunks),
``error_after_chunks`` (an error object, as OpenAI sends one mid-stream, after that many,
then the end), ``finish_reason: null`` (no finish reason sent) and ``usage: false`` (no usage
chunk even when asked for) or an object (the usage chunk's ``usage``, as given), and
``stamp_first_chunk`` (a streamed reply's first content piece begins with the server's own
time to it from the request's arrival, ``[model 0.050123 s] ``, read back by
:func:`model_seconds`: the benchmark subtracts it from a client's time to the first piece,
stream by stream, which leaves what the path to the model added).
The models' listing (``GET /v1/models``) takes its own script (``/_control/listing-script``):
``status`` and ``retry_after`` as above, or ``body`` (the raw text answered instead).
Everything received is recorded (``/_control/requests``), including when the client went
away: the server runs with aiohttp's handler cancellation, so a client closing its
connection is noticed at once, even mid-pause. ``--no-records`` records nothing: the
benchmark never reads the records, and tens of thousands of them, kept for the whole run,
made the server's garbage collections long enough to show in the times it measures.

The default reply is predictable: ``"Reply {n}: {last}"``, where ``n`` counts the user
messages sent (so a test can see how much context arrived) and ``last`` is the newest one;
it is streamed word by word (each word with the whitespace after it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import re
import time
from collections import deque
from typing import Any

from aiohttp import web

from chat_service.event_loop import choose_event_loop

Behaviour = dict[str, Any]

_WORD = re.compile(r"\S+\s*|\s+")
_SLOT = "\x00"  # a text no reply holds: where a piece goes in an event made once
_STAMP = re.compile(r"\[model (\d+\.\d{6}) s\] ")
_ids = itertools.count(1)
_ERROR_TYPES = {
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
}

SCRIPT = web.AppKey("script", deque[Behaviour])
DEFAULT = web.AppKey("default", dict[str, Behaviour])
RECORDS = web.AppKey("records", list[dict[str, Any]])
LISTINGS = web.AppKey("listings", list[dict[str, Any]])
LISTING_SCRIPT = web.AppKey("listing_script", deque[Behaviour])
KEEP_RECORDS = web.AppKey("keep_records", bool)


def model_seconds(text: str) -> float | None:
    """The server's own time to the first piece, from a first piece it stamped
    (``stamp_first_chunk``); None when ``text`` does not begin with a stamp."""
    found = _STAMP.match(text)
    return float(found.group(1)) if found else None


def default_reply(messages: list[dict[str, Any]]) -> str:
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    return f"Reply {len(users)}: {users[-1] if users else ''}"


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def _usage(messages: list[dict[str, Any]], pieces: list[str]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    arrived = time.perf_counter()
    body = await request.json()
    script = request.app[SCRIPT]
    behaviour = script.popleft() if script else request.app[DEFAULT]["behaviour"]
    record: dict[str, Any] = {
        "index": len(request.app[RECORDS]),
        "path": request.path,
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": body,
        "received_at": time.time(),
        "status": None,
        "stream": bool(body.get("stream")),
        "chunks_sent": 0,
        "completed": False,
        "disconnected_at": None,
        "ended_at": None,
    }
    if request.app[KEEP_RECORDS]:
        request.app[RECORDS].append(record)
    try:
        return await _answer(request, body, behaviour, record, arrived)
    except (asyncio.CancelledError, ConnectionResetError):
        record["disconnected_at"] = time.time()
        raise
    finally:
        record["ended_at"] = time.time()


async def _answer(
    request: web.Request,
    body: dict[str, Any],
    behaviour: Behaviour,
    record: dict[str, Any],
    arrived: float,
) -> web.StreamResponse:
    if delay := behaviour.get("first_chunk_delay_s"):
        await asyncio.sleep(delay)
    if behaviour.get("hang"):
        await asyncio.Event().wait()
    status = int(behaviour.get("status", 200))
    record["status"] = status
    if status != 200:
        return _error(request, status, behaviour)
    messages: list[dict[str, Any]] = body.get("messages", [])
    text = behaviour.get("reply", default_reply(messages))
    pieces: list[str] = list(behaviour.get("chunks") or split_words(text))
    model = behaviour.get("model", body.get("model", ""))
    finish = behaviour.get("finish_reason", "stop")
    common = {"id": f"chatcmpl-{next(_ids)}", "created": int(time.time()), "model": model}
    usage = _usage(messages, pieces)
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(pieces)}
        completion = {
            **common,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        record["completed"] = True
        return web.json_response(completion)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        chunk = {
            **common,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if include_usage:
            chunk["usage"] = None
        return f"data: {json.dumps(chunk)}\n\n"

    async def send(delta: dict[str, Any], finish_reason: str | None = None) -> None:
        await response.write(event(delta, finish_reason).encode())

    # A content chunk's event around its text, made once: the same bytes as event()'s, for
    # less of the load CPU per chunk in the benchmark.
    # (The last slot: the request's own fields, such as the model, come before the content.)
    before, after = event({"content": _SLOT}).rsplit(json.dumps(_SLOT), 1)

    async def send_content(piece: str) -> None:
        await response.write(f"{before}{json.dumps(piece)}{after}".encode())

    await send({"role": "assistant", "content": ""})
    hang_after = behaviour.get("hang_after_chunks")
    delays = behaviour.get("chunk_delays") or [behaviour.get("chunk_delay_s", 0)] * len(pieces)
    error_after = behaviour.get("error_after_chunks")
    stamp = bool(behaviour.get("stamp_first_chunk"))
    for number, piece in enumerate(pieces):
        if hang_after is not None and number == hang_after:
            await asyncio.Event().wait()
        if delays[number]:
            await asyncio.sleep(delays[number])
        if error_after is not None and number == error_after:
            error = {"message": "The server had an error", "type": "server_error", "code": None}
            await response.write(f"data: {json.dumps({'error': error})}\n\n".encode())
            await response.write_eof()
            return response
        if stamp and number == 0:
            piece = f"[model {time.perf_counter() - arrived:.6f} s] {piece}"
        await send_content(piece)
        record["chunks_sent"] += 1
    await send({}, finish)
    sent_usage = behaviour.get("usage", True)
    if include_usage and sent_usage:
        # An object is sent as given: a server that counts only some of the tokens.
        usage = sent_usage if isinstance(sent_usage, dict) else usage
        final = {**common, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    record["completed"] = True
    return response


def _error(request: web.Request, status: int, behaviour: Behaviour) -> web.Response:
    kind, code = _ERROR_TYPES.get(status, ("server_error", None))
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    message = str(behaviour.get("error_message", f"Test error {status}"))
    error = {"message": message.replace("{api_key}", token), "type": kind, "param": None}
    headers = {}
    if (retry_after := behaviour.get("retry_after")) is not None:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"error": {**error, "code": code}}, status=status, headers=headers)


# The models the server offers besides those it has been asked for.
OFFERED = ("gpt-test", "gpt-test-mini")


async def list_models(request: web.Request) -> web.Response:
    request.app[LISTINGS].append(
        {"headers": {name.lower(): value for name, value in request.headers.items()}}
    )
    if request.app[LISTING_SCRIPT]:
        behaviour = request.app[LISTING_SCRIPT].popleft()
        if "body" in behaviour:
            return web.Response(text=behaviour["body"], content_type="application/json")
        return _error(request, int(behaviour["status"]), behaviour)
    asked = {r["body"].get("model", "") for r in request.app[RECORDS]} - {""}
    known = sorted(asked | set(OFFERED))
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in known]
    return web.json_response({"object": "list", "data": data})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def script(request: web.Request) -> web.Response:
    request.app[SCRIPT].extend((await request.json())["behaviours"])
    return web.json_response({"queued": len(request.app[SCRIPT])})


async def listing_script(request: web.Request) -> web.Response:
    request.app[LISTING_SCRIPT].extend((await request.json())["behaviours"])
    return web.json_response({"queued": len(request.app[LISTING_SCRIPT])})


async def set_default(request: web.Request) -> web.Response:
    request.app[DEFAULT]["behaviour"] = await request.json()
    return web.json_response({"status": "ok"})


async def reset(request: web.Request) -> web.Response:
    request.app[SCRIPT].clear()
    request.app[DEFAULT]["behaviour"] = {}
    request.app[RECORDS].clear()
    request.app[LISTINGS].clear()
    request.app[LISTING_SCRIPT].clear()
    return web.json_response({"status": "ok"})


async def requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECORDS])


async def listings(request: web.Request) -> web.Response:
    return web.json_response(request.app[LISTINGS])


def create_app(*, keep_records: bool = True) -> web.Application:
    app = web.Application()
    app[KEEP_RECORDS] = keep_records
    app[SCRIPT] = deque[Behaviour]()
    default: dict[str, Behaviour] = {"behaviour": {}}
    app[DEFAULT] = default
    app[RECORDS] = list[dict[str, Any]]()
    app[LISTINGS] = list[dict[str, Any]]()
    app[LISTING_SCRIPT] = deque[Behaviour]()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/health", health)
    app.router.add_post("/_control/script", script)
    app.router.add_post("/_control/default", set_default)
    app.router.add_post("/_control/listing-script", listing_script)
    app.router.add_post("/_control/reset", reset)
    app.router.add_get("/_control/requests", requests)
    app.router.add_get("/_control/listings", listings)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--no-records", action="store_true", help="record no request (/_control/requests)"
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop (the benchmark's: it shares the load CPU with the client)",
    )
    args = parser.parse_args()
    # What start-up made stays for the process's life: kept out of every collection, whose
    # pauses (tens of ms for a full one) would land in the times the benchmark measures.
    gc.freeze()
    loop = choose_event_loop("uvloop").new_loop() if args.uvloop else None
    web.run_app(
        create_app(keep_records=not args.no_records),
        loop=loop,
        host=args.host,
        port=args.port,
        handler_cancellation=True,  # a client going away cancels its handler: recorded
        shutdown_timeout=0.5,
        # As the service's: the bench connects a thousand streams within a second, and a
        # connection the accept queue drops waits a second for its retransmission.
        backlog=2048,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
