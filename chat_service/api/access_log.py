"""The access log: one JSON line per request, in the shape of every other log line.

Built here directly instead of through ``logging`` (see telemetry/logs.py for why) and
written through the process's ``LineOutput``. A handler adds its request's event fields
(conversation, sizes, ...) with ``EVENT_FIELDS``; the telemetry middleware stores the
request's trace ids and route, since the line is written after the request's span ended.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from chat_service.api.errors import REQUEST_ERROR
from chat_service.api.identity import PRINCIPAL
from chat_service.api.request_id import REQUEST_ID
from chat_service.telemetry.context import SpanIds
from chat_service.telemetry.log_output import LineOutput
from chat_service.telemetry.logs import json_line
from chat_service.timestamps import utc_now

ACCESS_LOGGER = "chat_service.access"
REQUEST_TRACE_IDS = web.RequestKey("trace_ids", SpanIds)
REQUEST_ROUTE = web.RequestKey("route", str)
EVENT_FIELDS = web.RequestKey("event_fields", dict[str, object])


class JsonAccessLogger(AbstractAccessLogger):
    """aiohttp's access log: a JSON line per request, with the request's trace ids.

    The line has the same shape as every other log line. :meth:`configure` sets where it
    goes; until then it is an ordinary record of the ``chat_service.access`` logger, whose
    level decides in both cases whether it is written.
    """

    service_name: ClassVar[str] = "chat-service"
    output: ClassVar[LineOutput | None] = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        method, path, status = request.method, request.path, response.status
        message = f"{method} {path} {status}"
        output = self.output
        # The line's own keys first when it is written here, its fields after them: built
        # as one dict, since every request writes one (issue 26).
        line: dict[str, Any] = (
            {}
            if output is None
            else {
                "timestamp": utc_now(),
                "level": "INFO",
                "logger": self.logger.name,
                "message": message,
                "service": self.service_name,
            }
        )
        line["http_method"] = method
        line["route"] = request.get(REQUEST_ROUTE)
        line["path"] = path
        line["status"] = status
        line["duration_ms"] = round(time * 1000, 3)
        line["bytes_sent"] = response.body_length  # status line and headers included
        line["remote"] = request.remote
        line["user_agent"] = request.headers.get("User-Agent")
        if (request_id := request.get(REQUEST_ID)) is not None:
            line["request_id"] = request_id
        if (error := request.get(REQUEST_ERROR)) is not None:
            line["error"] = error
        if (principal := request.get(PRINCIPAL)) is not None and principal.namespace:
            line["principal"] = principal.namespace  # a name or a key's digest: no secret
        if (ids := request.get(REQUEST_TRACE_IDS)) is not None:
            line["trace_id"], line["span_id"] = ids.trace_id, ids.span_id
        if (event := request.get(EVENT_FIELDS)) is not None:
            line |= event
        if output is None:
            self.logger.info(message, extra=line)
            return
        output.write_soon(json_line(line))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    @classmethod
    def configure(cls, output: LineOutput | None, service_name: str) -> None:
        """Write lines through ``output`` (None: as records), naming ``service_name``."""
        cls.output = output
        cls.service_name = service_name
