"""JSON logs on stdout: one object per line, correlated with traces.

Every record (the access log included) carries an RFC 3339 UTC ``timestamp``, ``level``,
``logger``, ``message``, ``service``, and ``trace_id``/``span_id`` in lowercase hex when
a span is active, plus the event's own fields passed with ``extra=``. Serialisation and
escaping are python-json-logger's (with orjson, the fastest of its encoders).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pythonjsonlogger.orjson import OrjsonFormatter

from chat_service.telemetry.context import SpanIds, current_ids

ACCESS_LOGGER = "chat_service.access"
# Stored on the request by the telemetry middleware: the access log is written after the
# request's span has ended, so it cannot read the ids from the active context.
REQUEST_TRACE_IDS = web.RequestKey("trace_ids", SpanIds)
REQUEST_ROUTE = web.RequestKey("route", str)
# What a handler adds to its request's access-log line (conversation, sizes, ...).
EVENT_FIELDS = web.RequestKey("event_fields", dict[str, object])


class TraceJsonFormatter(OrjsonFormatter):
    """python-json-logger's (orjson) formatter with our field names and the active span's ids.

    ``add_fields`` (the library's extension point) is ours: every request writes a line,
    and the generic version (renames, defaults, a scan of each record attribute) was a
    sixth of a request's CPU time (bench/README.md). The output is the same.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
        )
        self._service_name = service_name
        self._second = -1
        self._second_text = ""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = self._timestamp(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["service"] = self._service_name
        log_data.update(message_dict)
        # The caller's extra= fields, in their order: what is not a LogRecord attribute.
        attributes = record.__dict__
        if extras := attributes.keys() - self._skip_fields:
            for key, value in attributes.items():
                if key in extras and not key.startswith("_"):
                    log_data[key] = value
        if "trace_id" not in log_data and (ids := current_ids()) is not None:
            log_data["trace_id"], log_data["span_id"] = ids.trace_id, ids.span_id

    def _timestamp(self, created: float) -> str:
        """RFC 3339 UTC with milliseconds; the part up to the second is reused within it."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:
            # orjson refuses strings that are not valid UTF-8, such as header bytes aiohttp
            # kept as surrogates: print them with replacement characters, never drop the line.
            return super().jsonify_log_record(_valid_text(log_data))


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(item) for item in value]
    return value


def configure_logging(level: int, service_name: str) -> None:
    """Send every logger's records to stdout as JSON lines, at ``level`` and above."""
    # What LogRecord would gather for fields we never print (the logging HOWTO's
    # "Optimization" section): the caller's frame, thread, process and its name.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TraceJsonFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings (deprecations and the like) become log records too, not stray text.
    logging.captureWarnings(True)


class JsonAccessLogger(AbstractAccessLogger):
    """aiohttp access log as structured fields instead of an Apache-style line."""

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
        self.logger.info("%s %s %s", request.method, request.path, response.status, extra=fields)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
