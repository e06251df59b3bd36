"""JSON logs on stdout: one object per line, correlated with traces.

Every line (the access log included) carries an RFC 3339 UTC ``timestamp``, ``level``,
``logger``, ``message``, ``service``, and ``trace_id``/``span_id`` in lowercase hex when
a span is active, plus the event's own fields passed with ``extra=``. Records are
formatted by python-json-logger (with orjson, the fastest of its encoders).

The access log is the exception to "records": a line per request is the hottest log there
is, and through ``logging`` (a LogRecord, the handler chain, the formatter, a write and a
flush per line) it was a fifth of a request's CPU time (bench/README.md). It builds the
same line itself; both go to stdout through one ``LineOutput`` (log_output.py).
"""

from __future__ import annotations

import atexit
import logging
import sys
from typing import Any, ClassVar

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter, orjson_default

from chat_service.telemetry.context import SpanIds, current_ids
from chat_service.telemetry.log_output import LineHandler, LineOutput
from chat_service.timestamps import rfc3339, utc_now

ACCESS_LOGGER = "chat_service.access"
# Stored on the request by the telemetry middleware: the access log is written after the
# request's span has ended, so it cannot read the ids from the active context.
REQUEST_TRACE_IDS = web.RequestKey("trace_ids", SpanIds)
REQUEST_ROUTE = web.RequestKey("route", str)
# What a handler adds to its request's access-log line (conversation, sizes, ...).
EVENT_FIELDS = web.RequestKey("event_fields", dict[str, object])


# What every LogRecord has; anything else on a record came from the caller's extra=.
_RECORD_ATTRIBUTES = frozenset(RESERVED_ATTRS)


class TraceJsonFormatter(OrjsonFormatter):
    """python-json-logger's (orjson) formatter with our field names and the active span's ids.

    ``add_fields`` (the library's extension point) is ours: the generic one (renames,
    defaults, a scan of every record attribute) cost more than the rest of the formatting.
    It writes ``levelname`` as ``level`` and ``name`` as ``logger``.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s")
        self._service_name = service_name

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = rfc3339(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["service"] = self._service_name
        log_data.update(message_dict)
        # The caller's extra= fields, in their order: what is not a LogRecord attribute.
        attributes = record.__dict__
        if extras := attributes.keys() - _RECORD_ATTRIBUTES:
            for key, value in attributes.items():
                if key in extras and not key.startswith("_"):
                    log_data[key] = value
        if "trace_id" not in log_data and (ids := current_ids()) is not None:
            log_data["trace_id"], log_data["span_id"] = ids.trace_id, ids.span_id

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return json_line(log_data).decode()


def json_line(data: dict[str, Any]) -> bytes:
    """``data`` as one line of JSON (no newline), whatever text it holds."""
    try:
        return orjson.dumps(data, default=orjson_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # orjson refuses strings that are not valid UTF-8, such as header bytes aiohttp
        # kept as surrogates: print them with replacement characters, never drop the line.
        return orjson.dumps(
            _valid_text(data), default=orjson_default, option=orjson.OPT_NON_STR_KEYS
        )


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(item) for item in value]
    return value


class JsonAccessLogger(AbstractAccessLogger):
    """aiohttp's access log: a JSON line per request, with the request's trace ids.

    The line has the same shape as every other log line. ``configure_logging`` sets where
    it goes; until then it is an ordinary record of the ``chat_service.access`` logger,
    whose level decides in both cases whether it is written.
    """

    service_name: ClassVar[str] = "chat-service"
    output: ClassVar[LineOutput | None] = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "http_method": request.method,
            "route": request.get(REQUEST_ROUTE),
            "path": request.path,
            "status": response.status,
            "duration_ms": round(time * 1000, 3),
            "bytes_sent": response.body_length,  # status line and headers included
            "remote": request.remote,
            "user_agent": request.headers.get("User-Agent"),
        }
        if request_id := request.headers.get("X-Request-ID"):
            fields["request_id"] = request_id
        if (ids := request.get(REQUEST_TRACE_IDS)) is not None:
            fields["trace_id"], fields["span_id"] = ids.trace_id, ids.span_id
        if (event := request.get(EVENT_FIELDS)) is not None:
            fields |= event
        message = f"{request.method} {request.path} {response.status}"
        if self.output is None:
            self.logger.info(message, extra=fields)
            return
        line = {
            "timestamp": utc_now(),
            "level": "INFO",
            "logger": self.logger.name,
            "message": message,
            "service": self.service_name,
            **fields,
        }
        self.output.write_soon(json_line(line))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def configure_logging(level: int, service_name: str) -> None:
    """Send every logger's records, and the access log, to stdout as JSON lines, at
    ``level`` and above."""
    # What LogRecord would gather for fields we never print (the logging HOWTO's
    # "Optimization" section): the caller's frame, thread, process and its name.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    binary = getattr(sys.stdout, "buffer", None)
    handler: logging.Handler
    if binary is not None:
        output = LineOutput(binary)
        atexit.register(output.flush)
        handler = LineHandler(output)
        JsonAccessLogger.output = output
    else:  # stdout replaced by a text-only stream: plain records, the access log included
        handler = logging.StreamHandler(sys.stdout)
        JsonAccessLogger.output = None
    JsonAccessLogger.service_name = service_name
    handler.setFormatter(TraceJsonFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings (deprecations and the like) become log records too, not stray text.
    logging.captureWarnings(True)
