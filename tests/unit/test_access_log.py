"""The access log's direct path and the log output: same line shape as every record, one
write per loop turn, lines in the order they were logged, a failing stdout costs no request."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from typing_extensions import Buffer

from chat_service.api.access_log import (
    EVENT_FIELDS,
    REQUEST_ROUTE,
    REQUEST_TRACE_IDS,
    JsonAccessLogger,
)
from chat_service.api.errors import REQUEST_ERROR
from chat_service.api.request_id import request_id
from chat_service.telemetry.context import SpanIds
from chat_service.telemetry.log_output import LineHandler, LineOutput
from chat_service.telemetry.logs import TraceJsonFormatter
from chat_service.timestamps import Timestamps

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
IDS = SpanIds("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=False)


class RecordingRaw(io.RawIOBase):
    """An unbuffered stream (stdout under PYTHONUNBUFFERED) that keeps each write(2)
    separately; it takes at most ``take`` bytes per call, as a pipe may."""

    def __init__(self, take: int = 1 << 20) -> None:
        self.writes: list[bytes] = []
        self._take = take

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        chunk = bytes(data)[: self._take]
        self.writes.append(chunk)
        return len(chunk)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in b"".join(self.writes).splitlines()]


@pytest.fixture
def raw() -> RecordingRaw:
    return RecordingRaw()


@pytest.fixture
def output(raw: RecordingRaw) -> LineOutput:
    return LineOutput(raw)


@pytest.fixture
def access_logger(output: LineOutput) -> Iterator[JsonAccessLogger]:
    JsonAccessLogger.configure(output, "svc")
    logger = logging.getLogger("chat_service.access")
    logger.setLevel(logging.INFO)
    yield JsonAccessLogger(logger, "")
    JsonAccessLogger.configure(None, "chat-service")
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def records(output: LineOutput) -> Iterator[logging.Logger]:
    """A logger whose records go through ``output``, as the root logger's do in the service."""
    handler = LineHandler(output)
    handler.setFormatter(TraceJsonFormatter("svc"))
    logger = logging.getLogger("chat_service.test_output")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


def a_request(path: str = "/chat/message", **headers: str) -> web.Request:
    request = make_mocked_request("POST", path, headers={"User-Agent": "ua/1", **headers})
    request[REQUEST_ROUTE] = "/chat/message"
    request[REQUEST_TRACE_IDS] = IDS
    request[EVENT_FIELDS] = {"conversation_id": "c1", "turn": 2}
    return request


async def test_access_line_has_the_shape_of_every_log_line(
    access_logger: JsonAccessLogger, raw: RecordingRaw
) -> None:
    request = a_request(**{"X-Request-ID": "r-1"})
    request_id(request)  # what preparing the response does
    access_logger.log(request, web.Response(status=201), 0.0123456)
    await asyncio.sleep(0)  # the flush runs on the next turn of the loop
    (line,) = raw.lines()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    formatted = json.loads(TraceJsonFormatter("svc").format(record))
    assert (
        list(line)[:5]
        == list(formatted)[:5]
        == [
            "timestamp",
            "level",
            "logger",
            "message",
            "service",
        ]
    )
    assert TIMESTAMP.fullmatch(str(line["timestamp"]))
    assert line["level"] == "INFO"
    assert line["logger"] == "chat_service.access"
    assert line["message"] == "POST /chat/message 201"
    assert line["service"] == "svc"
    assert line["status"] == 201
    assert line["duration_ms"] == 12.346
    assert line["route"] == "/chat/message"
    assert line["user_agent"] == "ua/1"
    assert line["request_id"] == "r-1"
    assert (line["trace_id"], line["span_id"]) == (IDS.trace_id, IDS.span_id)
    assert (line["conversation_id"], line["turn"]) == ("c1", 2)
    assert "error" not in line


async def test_an_error_line_says_why(access_logger: JsonAccessLogger, raw: RecordingRaw) -> None:
    request = a_request()
    request[REQUEST_ERROR] = "Field 'message' must not be blank."
    access_logger.log(request, web.Response(status=400), 0.001)
    await asyncio.sleep(0)
    (line,) = raw.lines()
    assert line["status"] == 400
    assert line["error"] == "Field 'message' must not be blank."


async def test_lines_of_one_loop_turn_leave_in_one_write(
    access_logger: JsonAccessLogger, raw: RecordingRaw
) -> None:
    for _ in range(3):
        access_logger.log(a_request(), web.Response(), 0.001)
    assert raw.writes == [], "nothing is written before the loop turns"
    await asyncio.sleep(0)
    assert len(raw.writes) == 1
    assert len(raw.lines()) == 3
    access_logger.log(a_request(), web.Response(), 0.001)
    await asyncio.sleep(0)
    assert len(raw.writes) == 2, "a later turn flushes again"


async def test_records_and_access_lines_keep_their_order(
    access_logger: JsonAccessLogger, records: logging.Logger, raw: RecordingRaw
) -> None:
    records.warning("first")
    access_logger.log(a_request("/second"), web.Response(), 0.001)
    access_logger.log(a_request("/third"), web.Response(), 0.001)
    records.warning("fourth")  # written at once, behind the two waiting access lines
    access_logger.log(a_request("/fifth"), web.Response(), 0.001)
    await asyncio.sleep(0)
    assert [line["message"] for line in raw.lines()] == [
        "first",
        "POST /second 200",
        "POST /third 200",
        "fourth",
        "POST /fifth 200",
    ]
    assert len(raw.writes) == 3, "a record, the two waiting lines with the next, the last"


async def test_records_from_other_threads_are_whole_lines(
    access_logger: JsonAccessLogger, records: logging.Logger, raw: RecordingRaw
) -> None:
    def log_many(name: str) -> None:
        for i in range(200):
            records.warning("%s %d", name, i)

    threads = [threading.Thread(target=log_many, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        access_logger.log(a_request(), web.Response(), 0.001)
        await asyncio.sleep(0)
    for thread in threads:
        thread.join()
    lines = raw.lines()  # json.loads on every line: a torn one would fail here
    assert len(lines) == 4 * 200 + 200
    for n in range(4):
        mine = [line["message"] for line in lines if str(line["message"]).startswith(f"t{n} ")]
        assert mine == [f"t{n} {i}" for i in range(200)], "each thread's lines in its order"


async def test_a_stream_that_takes_part_of_a_write_gets_the_rest(
    access_logger: JsonAccessLogger,
) -> None:
    raw = RecordingRaw(take=7)
    JsonAccessLogger.output = LineOutput(raw)
    access_logger.log(a_request(), web.Response(), 0.001)
    access_logger.log(a_request(), web.Response(), 0.001)
    await asyncio.sleep(0)
    assert len(raw.lines()) == 2
    assert max(len(chunk) for chunk in raw.writes) == 7


class ClosedPipe(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_failing_stdout_costs_lines_not_requests(
    access_logger: JsonAccessLogger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    JsonAccessLogger.output = LineOutput(ClosedPipe())
    for _ in range(3):
        access_logger.log(a_request(), web.Response(), 0.001)  # must not raise
        await asyncio.sleep(0)
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, "reported once, not per line"
    assert "BrokenPipeError" in errors[0]


async def test_undecodable_header_text_is_replaced_not_dropped(
    access_logger: JsonAccessLogger, raw: RecordingRaw
) -> None:
    request = a_request()
    fields: dict[str, object] = {"note": "bad \udcff byte"}
    request[EVENT_FIELDS] = fields
    access_logger.log(request, web.Response(), 0.001)
    await asyncio.sleep(0)
    (line,) = raw.lines()
    assert line["note"] == "bad \ufffd byte"


def test_without_configured_output_the_line_is_a_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert JsonAccessLogger.output is None
    logger = JsonAccessLogger(logging.getLogger("chat_service.access"), "")
    with caplog.at_level(logging.INFO, logger="chat_service.access"):
        logger.log(a_request(), web.Response(status=404), 0.002)
    (record,) = caplog.records
    assert record.getMessage() == "POST /chat/message 404"
    assert record.__dict__["status"] == 404
    assert record.__dict__["trace_id"] == IDS.trace_id


async def test_access_log_follows_its_logger_level(
    access_logger: JsonAccessLogger, raw: RecordingRaw
) -> None:
    access_logger.logger.setLevel(logging.WARNING)
    assert not access_logger.enabled
    access_logger.log(a_request(), web.Response(), 0.001)
    await asyncio.sleep(0)
    assert raw.writes == []


@pytest.mark.parametrize(
    ("created", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1700000000.9996, "2023-11-14T22:13:20.999Z"),
        (1700000001.25, "2023-11-14T22:13:21.250Z"),
        (1700000000.001, "2023-11-14T22:13:20.001Z"),
        (1700000000.9999996, "2023-11-14T22:13:21.000Z"),
    ],
)
def test_timestamps_are_rfc3339_utc_milliseconds(created: float, text: str) -> None:
    timestamps = Timestamps()
    timestamps.format(created - 1)  # a cached second before must not leak into the next
    assert timestamps.format(created) == text


def test_timestamps_agree_with_datetime() -> None:
    timestamps = Timestamps()
    for step in range(5000):
        created = 1_700_000_000 + step * 0.000_731
        expected = (
            datetime.fromtimestamp(created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        assert timestamps.format(created) == expected, created
