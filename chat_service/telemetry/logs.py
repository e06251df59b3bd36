"""JSON logs on stdout: one object per line, correlated with traces.

Every line (the access log included) carries an RFC 3339 UTC ``timestamp``, ``level``,
``logger``, ``message``, ``service``, and ``trace_id``/``span_id`` in lowercase hex when
a span is active, plus the event's own fields passed with ``extra=``. Records are
formatted by python-json-logger (with orjson, the fastest of its encoders).

The access log (chat_service/api/access_log.py) is the exception to "records": a line per
request is the hottest log there is, and through ``logging`` (a LogRecord, the handler
chain, the formatter, a write and a flush per line) it was a fifth of a request's CPU time
(bench/README.md). It builds the same line itself, with :func:`json_line`; both go to
stdout through the one ``LineOutput`` (log_output.py) that ``configure_logging`` returns.
"""

from __future__ import annotations

import atexit
import logging
import sys
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter, orjson_default

from chat_service.telemetry.context import current_ids
from chat_service.telemetry.log_output import LineHandler, LineOutput
from chat_service.timestamps import rfc3339

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


def configure_logging(level: int, service_name: str) -> LineOutput | None:
    """Send every logger's records to stdout as JSON lines, at ``level`` and above; return
    the output they go through, for other writers of whole lines (None when stdout takes
    only text)."""
    # What LogRecord would gather for fields we never print (the logging HOWTO's
    # "Optimization" section): the caller's frame, thread, process and its name.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    binary = getattr(sys.stdout, "buffer", None)
    handler: logging.Handler
    output: LineOutput | None = None
    if binary is not None:
        output = LineOutput(binary)
        atexit.register(output.flush)
        handler = LineHandler(output)
    else:  # stdout replaced by a text-only stream: plain records
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TraceJsonFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings (deprecations and the like) become log records too, not stray text.
    logging.captureWarnings(True)
    return output
