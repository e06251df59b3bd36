"""Traces as a collector receives them: decoded from what the real exporter sends."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from bench.limits import LIMITS_OFF
from tests.conftest import StartService
from tests.support.otlp import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan
from tests.support.service import ServiceProcess

COMMIT_SPANS = {"INSERT exchanges", "BATCH INSERT exchanges"}
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def exporting_to(endpoint: str, protocol: str = "http/protobuf", **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **extra,
    }


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [span for span in spans if span.name == name]
    assert len(matches) == 1, f"expected one {name!r} span, got {[s.name for s in spans]}"
    return matches[0]


def one_post_is_exported(spans: list[ReceivedSpan]) -> bool:
    names = {span.name for span in spans}
    return {"POST /chat/message", "chat dummy-1", "INSERT exchanges"} <= names


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_one_post_exports_a_connected_trace(start_service: StartService, protocol: str) -> None:
    receiver_type = OtlpGrpcReceiver if protocol == "grpc" else OtlpHttpReceiver
    with receiver_type() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint, protocol))
        status, headers, _ = service.request("POST", "/chat/message", {"message": "hello"})
        assert status == 200
        spans = receiver.wait_for(one_post_is_exported)

    server = by_name(spans, "POST /chat/message")
    assert server.kind == "SPAN_KIND_SERVER"
    assert server.attributes["http.route"] == "/chat/message"
    assert server.attributes["http.response.status_code"] == 200
    # The made-up X-Request-ID finds the trace too.
    assert server.attributes["chat_service.request_id"] == headers["X-Request-ID"]
    assert server.resource["service.name"] == "chat-service"
    assert server.resource["service.version"]
    version, trace_id, span_id, flags = headers["traceresponse"].split("-")
    assert (version, trace_id, span_id) == ("00", server.trace_id, server.span_id)
    assert int(flags, 16) & 0x01, "sampled flag"

    genai = by_name(spans, "chat dummy-1")
    assert (genai.trace_id, genai.parent_span_id) == (server.trace_id, server.span_id)
    # CLIENT, as for a model server: the dummy stands in for one.
    assert genai.kind == "SPAN_KIND_CLIENT"
    assert genai.attributes["gen_ai.operation.name"] == "chat"
    assert genai.attributes["gen_ai.provider.name"] == "chat-service"
    assert genai.attributes["gen_ai.request.model"] == "dummy-1"
    assert genai.attributes["gen_ai.response.model"] == "dummy-1"
    assert genai.attributes["gen_ai.conversation.id"] == "default"
    assert genai.attributes["gen_ai.usage.input_tokens"] == 1
    assert genai.attributes["gen_ai.usage.output_tokens"] > 0
    assert genai.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert genai.attributes["gen_ai.request.stream"] is True
    assert 0 <= genai.attributes["gen_ai.response.time_to_first_chunk"] < 1
    assert not any(key.endswith(".messages") for key in genai.attributes), "content is opt-in"

    # The conversation's model and instructions: one read of its row, named after the table
    # it reads. There is none before its first message, so it has no exchanges either: the
    # context needs no read of its own (no "SELECT exchanges").
    settings = by_name(spans, "SELECT conversations")
    assert (settings.trace_id, settings.parent_span_id) == (server.trace_id, server.span_id)
    assert settings.kind == "SPAN_KIND_CLIENT"
    assert settings.attributes["db.system.name"] == "sqlite"
    assert settings.attributes["db.operation.name"] == "SELECT"
    assert settings.attributes["db.collection.name"] == "conversations"
    assert settings.attributes["db.response.returned_rows"] == 0, "not created before its first"
    assert not [span for span in spans if span.name == "SELECT exchanges"]

    assert not [span for span in spans if span.name == "wait for group commit"]
    assert [name for name in server.events if "group commit" in name] == [
        "queued for group commit",
        "stored by group commit",
    ], "the wait is two events on the request's span"

    commit = by_name(spans, "INSERT exchanges")
    assert commit.kind == "SPAN_KIND_CLIENT"
    assert commit.parent_span_id == "", "the commit is the root of its own trace"
    assert commit.trace_id != server.trace_id
    assert (server.trace_id, server.span_id) in commit.links
    assert commit.attributes["db.operation.name"] == "INSERT"
    assert commit.attributes["db.system.name"] == "sqlite"
    assert "db.operation.batch.size" not in commit.attributes, "one row is not a batch"


def test_commit_span_links_every_request_of_its_batch(start_service: StartService) -> None:
    import concurrent.futures

    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint, **LIMITS_OFF))
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(
                pool.map(
                    # One conversation each: a conversation answers one message at a time.
                    lambda i: service.request(
                        "POST", "/chat/message", {"message": f"m{i}", "conversation_id": f"c{i}"}
                    ),
                    range(64),
                )
            )
        assert all(status == 200 for status, _, _ in results)
        spans = receiver.wait_for(
            lambda s: (
                sum(span.name == "POST /chat/message" for span in s) == 64
                and sum(len(span.links) for span in s if span.name in COMMIT_SPANS) == 64
            )
        )
    requests = {(s.trace_id, s.span_id) for s in spans if s.name == "POST /chat/message"}
    commits = [s for s in spans if s.name in COMMIT_SPANS]
    linked = [link for commit in commits for link in commit.links]
    assert sorted(linked) == sorted(requests), "each request is linked from exactly one commit"
    assert any(commit.name == "BATCH INSERT exchanges" for commit in commits), "batched"
    for commit in commits:
        assert len(commit.links) == commit.attributes.get("db.operation.batch.size", 1)


def test_traceparent_continues_the_callers_trace(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint))
        status, headers, _ = service.request(
            "POST",
            "/chat/message",
            {"message": "traced"},
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
        assert status == 200
        spans = receiver.wait_for(one_post_is_exported)
        service.stop()

    server = by_name(spans, "POST /chat/message")
    assert (server.trace_id, server.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert headers["traceresponse"].startswith(f"00-{CALLER_TRACE}-{server.span_id}-")

    logs = [json.loads(line) for line in service.stdout().splitlines()]
    (access,) = [line for line in logs if line.get("trace_id") == CALLER_TRACE]
    assert access["logger"] == "chat_service.access"
    assert access["span_id"] == server.span_id
    assert access["route"] == "/chat/message"
    assert access["conversation_id"] == "default"

    with sqlite3.connect(service.db_path) as conn:
        stored = conn.execute("SELECT trace_id FROM exchanges").fetchall()
    assert stored == [(CALLER_TRACE,)]


def test_unsampled_caller_gets_a_trace_id_but_nothing_exported(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint))
        status, headers, _ = service.request(
            "GET", "/chat/history", headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
        )
        assert status == 200
        assert headers["traceresponse"].startswith(f"00-{CALLER_TRACE}-")
        assert not int(headers["traceresponse"].rsplit("-", 1)[1], 16) & 0x01
        service.stop()  # flushes the exporter
    assert receiver.spans == []


def test_message_content_is_captured_only_when_asked(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint, CHAT_CAPTURE_CONTENT="true"))
        service.request("POST", "/chat/message", {"message": "secret plan"})
        spans = receiver.wait_for(one_post_is_exported)
    genai = by_name(spans, "chat dummy-1")
    inputs = json.loads(genai.attributes["gen_ai.input.messages"])
    outputs = json.loads(genai.attributes["gen_ai.output.messages"])
    assert inputs[-1]["role"] == "user"
    assert inputs[-1]["parts"] == [{"type": "text", "content": "secret plan"}]
    assert outputs[0]["role"] == "assistant"
    assert "secret plan" in outputs[0]["parts"][0]["content"]


def test_probes_and_metrics_are_not_traced(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint))
        for path in ("/healthz", "/readyz", "/metrics", "/chat/history"):
            assert service.request("GET", path)[0] == 200
        service.stop()
    names = {span.name for span in receiver.spans}
    assert "GET /chat/history" in names
    assert not names & {"GET /healthz", "GET /readyz", "GET /metrics"}


def test_unknown_paths_are_not_span_names(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(env=exporting_to(receiver.endpoint))
        assert service.request("GET", "/users/12345/secret")[0] == 404
        service.stop()
    (span,) = receiver.spans
    assert span.name == "GET"
    assert span.attributes["http.response.status_code"] == 404


@pytest.mark.parametrize(
    "switch_off",
    [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}],
    ids=["sdk-disabled", "exporter-none"],
)
def test_switching_export_off_wins_over_an_endpoint(
    start_service: StartService, switch_off: dict[str, str]
) -> None:
    with OtlpHttpReceiver() as receiver:
        # Pointed at a live receiver, and told not to export: nothing may reach it.
        service = start_service(env={**exporting_to(receiver.endpoint), **switch_off})
        for i in range(5):
            status, headers, _ = service.request("POST", "/chat/message", {"message": f"m{i}"})
            assert status == 200
            assert headers["traceresponse"].endswith("-00"), "not recorded, so not sampled"
        assert service.stop() == 0  # a stop flushes whatever the exporter holds
    assert receiver.requests == 0
    assert_no_telemetry_noise(service)


def test_without_an_endpoint_nothing_is_recorded_or_printed(start_service: StartService) -> None:
    service = start_service()
    for i in range(5):
        status, headers, _ = service.request("POST", "/chat/message", {"message": f"m{i}"})
        assert status == 200
        # Every request still has a trace id (for logs and this header), recorded by no one.
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", headers["traceresponse"])
    assert service.stop() == 0
    assert_no_telemetry_noise(service)


def assert_no_telemetry_noise(service: ServiceProcess) -> None:
    loggers = {json.loads(line)["logger"] for line in service.stdout().splitlines()}
    assert not any(name.startswith("opentelemetry") for name in loggers), loggers
    assert service.stderr() == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER supports 'otlp' and 'none'"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL must be one of",
        ),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED must be true or false"),
        (
            {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-(trip"},
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST is not a list of regular",
        ),
    ],
)
def test_bad_otel_settings_stop_start_up(
    start_service: StartService, env: dict[str, str], message: str
) -> None:
    with pytest.raises(RuntimeError, match=message):
        start_service(env=env)


def test_without_export_ids_still_flow_to_headers_and_logs(start_service: StartService) -> None:
    service = start_service()  # no endpoint: nothing recorded, ids kept
    status, headers, _ = service.request(
        "POST",
        "/chat/message",
        {"message": "untraced"},
        headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
    )
    assert status == 200
    version, trace_id, span_id, flags = headers["traceresponse"].split("-")
    assert (version, trace_id) == ("00", CALLER_TRACE)
    assert span_id != CALLER_SPAN, "the service's own span, a child of the caller's"
    assert not int(flags, 16) & 0x01, "not recorded, and the header says so"
    _, headers, _ = service.request("GET", "/chat/history")
    assert headers["traceresponse"].split("-")[1] != CALLER_TRACE, "a new trace otherwise"
    service.stop()
    logs = [json.loads(line) for line in service.stdout().splitlines()]
    (access,) = [line for line in logs if line.get("trace_id") == CALLER_TRACE]
    assert access["span_id"] == span_id


# Credentials a caller sends: a valid API key, a cookie, a proxy's credential.
API_KEY = "zq-api-key-5d1e8a7f30c2"
CREDENTIALS = {
    "Authorization": f"Bearer {API_KEY}",
    "Cookie": "session=zq-cookie-91b4",
    "Proxy-Authorization": "Basic zq-proxy-77c0",
}


def all_values(spans: list[ReceivedSpan]) -> str:
    """Every attribute value of every span, resource and event names included, as text."""
    return repr([(span.name, span.attributes, span.resource, span.events) for span in spans])


@pytest.mark.parametrize(
    "capture",
    [
        {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ".*"},
        {
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": (
                "Authorization,cookie,PROXY-AUTHORIZATION,X-Trip"
            ),
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "",
        },
        {
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "(?!x).*",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "x-nothing",
        },
    ],
    ids=["all", "listed-by-name", "regex"],
)
def test_credentials_never_reach_a_span_whatever_header_capture_says(
    start_service: StartService, capture: dict[str, str]
) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(
            env=exporting_to(
                receiver.endpoint,
                CHAT_API_KEYS=f"tester:{API_KEY}",
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE=".*",
                **capture,
            )
        )
        status, _, _ = service.request(
            "POST", "/chat/message", {"message": "hello"}, headers={**CREDENTIALS, "X-Trip": "1"}
        )
        assert status == 200, "the key was accepted: the request got as far as a span"
        spans = receiver.wait_for(one_post_is_exported)
        service.stop()
    exported = all_values(spans)
    for secret in ("zq-api-key", "zq-cookie", "zq-proxy"):
        assert secret not in exported
    # Not for want of capturing: the headers are there, their values are not.
    server = by_name(spans, "POST /chat/message")
    for name in ("authorization", "cookie", "proxy-authorization"):
        assert server.attributes[f"http.request.header.{name}"] == ["[REDACTED]"]


def test_configured_headers_are_captured_on_the_request_span(start_service: StartService) -> None:
    with OtlpHttpReceiver() as receiver:
        service = start_service(
            env=exporting_to(
                receiver.endpoint,
                CHAT_API_KEYS=f"tester:{API_KEY}",
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=(
                    "X-Trip, x-plan-.*, Authorization, Cookie, Proxy-Authorization"
                ),
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE=(
                    "Content-Type,X-Request-ID,ratelimit.*"
                ),
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="x-plan-secret",
            )
        )
        status, headers, _ = service.request(
            "POST",
            "/chat/message",
            {"message": "hello"},
            headers={
                **CREDENTIALS,
                "X-Trip": "Lisbon",
                "X-Plan-Day": "3",
                "X-Plan-Secret": "zq-plan-0a9c",
                "X-Other": "not listed",
            },
        )
        assert status == 200
        spans = receiver.wait_for(one_post_is_exported)
        service.stop()

    server = by_name(spans, "POST /chat/message")
    captured = {
        key: value
        for key, value in server.attributes.items()
        if key.startswith(("http.request.header.", "http.response.header."))
    }
    assert captured == {
        "http.request.header.x-trip": ["Lisbon"],
        "http.request.header.x-plan-day": ["3"],
        "http.request.header.x-plan-secret": ["[REDACTED]"],
        "http.request.header.authorization": ["[REDACTED]"],
        "http.request.header.cookie": ["[REDACTED]"],
        "http.request.header.proxy-authorization": ["[REDACTED]"],
        "http.response.header.content-type": ["application/json; charset=utf-8"],
        # Set by on_response_prepare hooks: the root app's, and the /chat sub-app's.
        "http.response.header.x-request-id": [headers["X-Request-ID"]],
        "http.response.header.ratelimit-policy": [headers["RateLimit-Policy"]],
        "http.response.header.ratelimit": [headers["RateLimit"]],
    }
    assert "zq-plan-0a9c" not in all_values(spans)
