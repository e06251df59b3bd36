"""The model server's chat-completions endpoint over one pooled aiohttp session: the request,
its retries and timeouts, and the response whose body the relay reads as it arrives.

The relay's hot path (issue 26). The openai SDK did this before, and building and sending each
request through it cost 17% of the service's CPU at 500 streams (its parameter transform
alone about a fifth of a request), its line iterators over aiohttp another 10%
(bench/README.md). Here the body is serialised once with orjson and posted as is.

What the SDK gave is kept:

- **Retries**, ``max_retries`` of them, on 408, 409, 429, 5xx, a broken connection and a read
  that timed out, unless the server says otherwise in ``x-should-retry``. The wait before
  each is the server's (``retry-after-ms``, ``retry-after`` in seconds or as a date) when it
  asks for at most ``MAX_RETRY_AFTER_S``; a server asking for longer is not retried, the
  caller would rather hear now. Otherwise it doubles from ``INITIAL_BACKOFF_S`` up to
  ``MAX_BACKOFF_S``, less up to a quarter at random so that callers refused together do
  not come back together. ``on_retry`` is called before each retry.
- **Timeouts**: ``timeout_s`` for each read from the server (connecting: at most 10 s); the
  caller bounds the whole wait for the first piece (openai.py).
- **Errors** named as the SDK named them (``RateLimitError``, ``APIConnectionError``, ...),
  which the API, the logs and the spans tell apart (api/replies.py); their message gives the
  status, never the body, which may quote the request or part of the key.
- **Trace context**: each attempt carries the W3C ``traceparent`` of the span it is made in.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from opentelemetry import propagate

from chat_service.assistant.base import AssistantError

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0
CONNECT_TIMEOUT_S = 10.0
# Idle connections are closed after this long (servers close theirs after 5-75 s).
KEEPALIVE_S = 15.0
# How the SDK named a refusal by its status (a 5xx is an InternalServerError).
ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
CONNECTION_ERROR = "APIConnectionError"
TIMEOUT_ERROR = "APITimeoutError"


class ModelClient:
    """Posts to one model server's endpoints, retrying as the module says."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float,
        max_retries: int,
        max_connections: int,
        on_retry: Callable[[], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "User-Agent": "chat-service",
        }
        self._get_headers = {**self._headers, "Accept": "application/json"}
        del self._get_headers["Content-Type"]
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=min(timeout_s, CONNECT_TIMEOUT_S), sock_read=timeout_s
        )
        self._max_retries = max_retries
        self._max_connections = max_connections
        self._on_retry = on_retry
        self._jitter = jitter
        self._session: aiohttp.ClientSession | None = None

    async def post(self, path: str, body: Mapping[str, Any]) -> Body:
        """The body of the answer to ``body`` posted to ``path``, once its status is a
        success, unread (the caller reads and closes it); AssistantError if it never is."""
        return await self._request("POST", path, orjson.dumps(body), self._headers)

    async def get(self, path: str) -> Body:
        """The body of the answer to a GET of ``path``, as :meth:`post`'s."""
        return await self._request("GET", path, None, self._get_headers)

    async def _request(
        self, method: str, path: str, payload: bytes | None, sent_headers: Mapping[str, str]
    ) -> Body:
        retries = 0
        while True:
            headers = dict(sent_headers)
            propagate.inject(headers)
            delay: float | None
            try:
                response = await self._client().request(
                    method, self._base_url + path, data=payload, headers=headers
                )
            except aiohttp.ClientError as exc:
                failure, delay = unanswered(exc), self._backoff(retries)
            else:
                if response.status < 400:
                    return Body(response)
                # The error's body is read (so the connection can be reused) and dropped.
                await response.read()
                response.release()
                failure = _refused(response.status)
                delay = retry_delay(response.status, response.headers, self._backoff(retries))
            if delay is None or retries >= self._max_retries:
                raise failure
            retries += 1
            if self._on_retry is not None:
                self._on_retry()
            await asyncio.sleep(delay)

    def _backoff(self, retries: int) -> float:
        """The wait before retry ``retries + 1`` when the server names none."""
        wait = min(INITIAL_BACKOFF_S * 2.0**retries, MAX_BACKOFF_S)
        return wait * (1 - 0.25 * self._jitter())

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (in the event loop that will run it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
                ),
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Body:
    """A successful answer's body, read a block at a time as it arrives."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def read(self) -> bytes:
        """What the server sent since the last read (waiting for it); empty at the end.
        AssistantError when the read times out or the connection breaks."""
        try:
            return await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise unanswered(exc) from exc

    async def read_all(self) -> bytes:
        """The whole body (and the connection given back). AssistantError as :meth:`read`."""
        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            raise unanswered(exc) from exc
        finally:
            self._response.release()

    def close(self) -> None:
        """Give the connection back: to the pool when the body was read to its end;
        otherwise aiohttp closes it, which tells the server the client went."""
        self._response.release()


def retry_delay(status: int, headers: Mapping[str, str], backoff: float) -> float | None:
    """How long to wait before asking again after ``status``, or None not to ask again."""
    asked = retry_after(headers)
    if asked is not None and asked > MAX_RETRY_AFTER_S:
        return None
    should = headers.get("x-should-retry")
    if should == "false" or (should != "true" and status not in (408, 409, 429) and status < 500):
        return None
    return asked if asked is not None and asked > 0 else backoff


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """The seconds the server asks to wait: ``retry-after-ms``, else ``retry-after`` in
    seconds or as an HTTP date; None when it asks nothing that can be read."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if not math.isnan(seconds):
            return seconds  # an infinite wait is one too long to retry after
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return date.timestamp() - now()


def _refused(status: int) -> AssistantError:
    error_type = ERROR_TYPES.get(
        status, "InternalServerError" if status >= 500 else "APIStatusError"
    )
    return AssistantError(f"the model call failed (HTTP {status})", error_type=error_type)


def unanswered(exc: aiohttp.ClientError) -> AssistantError:
    """A request or a read that had no answer: timed out, or the connection broke."""
    timed_out = isinstance(exc, aiohttp.ServerTimeoutError)
    return AssistantError(
        "the model call failed (no HTTP answer)",
        error_type=TIMEOUT_ERROR if timed_out else CONNECTION_ERROR,
    )
