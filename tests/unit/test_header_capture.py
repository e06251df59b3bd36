"""Which headers a recorded request span carries (telemetry/http_headers.py): the contrib
instrumentations' variables and matching, and credentials redacted whatever they say."""

from __future__ import annotations

import pytest

from chat_service.config import ConfigError
from chat_service.telemetry.http_headers import HeaderCapture

REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
SENT = [
    ("X-Trip", "Lisbon"),
    ("X-Plan-Day", "3"),
    ("X-Plan-Secret", "hidden"),
    ("X-Forwarded-For", "192.0.2.1"),
    ("x-forwarded-for", "192.0.2.2"),
    ("aUtHoRiZaTiOn", "Bearer zq-key"),
    ("Proxy-Authorization", "Basic zq-proxy"),
    ("Cookie", "a=zq-1"),
    ("Cookie", "b=zq-2"),
]


def capture(**environ: str) -> HeaderCapture:
    made = HeaderCapture.from_environ(environ)
    assert made is not None
    return made


@pytest.mark.parametrize("environ", [{}, {SANITIZE: ".*"}, {REQUEST: " , ", RESPONSE: ""}])
def test_nothing_is_captured_unless_asked(environ: dict[str, str]) -> None:
    assert HeaderCapture.from_environ(environ) is None


def test_names_and_patterns_match_whole_names_ignoring_case() -> None:
    attributes = capture(**{REQUEST: "x-trip, X-PLAN-.*, forwarded, X-Forwarded-For"})
    assert attributes.request_attributes(SENT) == {
        "http.request.header.x-trip": ["Lisbon"],
        "http.request.header.x-plan-day": ["3"],
        "http.request.header.x-plan-secret": ["hidden"],
        # Every value of a repeated header, whatever the spelling of its name.
        "http.request.header.x-forwarded-for": ["192.0.2.1", "192.0.2.2"],
    }
    assert attributes.response_attributes([("X-Trip", "Lisbon")]) == {}, "requests only"


def test_sanitize_fields_redact_the_values_of_the_headers_they_find() -> None:
    attributes = capture(**{REQUEST: "x-.*", SANITIZE: "secret, forwarded"})
    assert attributes.request_attributes(SENT) == {
        "http.request.header.x-trip": ["Lisbon"],
        "http.request.header.x-plan-day": ["3"],
        "http.request.header.x-plan-secret": ["[REDACTED]"],
        "http.request.header.x-forwarded-for": ["[REDACTED]", "[REDACTED]"],
    }


@pytest.mark.parametrize(
    "environ",
    [
        {REQUEST: ".*"},
        {REQUEST: "Authorization,PROXY-AUTHORIZATION,cookie", SANITIZE: ""},
        {REQUEST: "(?!x-).*", SANITIZE: "x-nothing"},
        {REQUEST: "auth.*|proxy.*|cookie", SANITIZE: "(?!authorization)"},
        {REQUEST: ".*", SANITIZE: "|"},
    ],
    ids=["all", "listed", "regex", "negative-sanitizer", "empty-alternative"],
)
def test_credentials_are_redacted_whatever_is_configured(environ: dict[str, str]) -> None:
    attributes = capture(**environ).request_attributes(SENT)
    assert attributes["http.request.header.authorization"] == ["[REDACTED]"]
    assert attributes["http.request.header.proxy-authorization"] == ["[REDACTED]"]
    assert attributes["http.request.header.cookie"] == ["[REDACTED]", "[REDACTED]"]
    assert "zq-" not in repr(attributes)


def test_a_response_header_capture_redacts_set_cookie_too() -> None:
    attributes = capture(**{RESPONSE: "set-cookie, content-type"})
    sent = [("Content-Type", "application/json"), ("Set-Cookie", "session=zq-9")]
    assert attributes.response_attributes(sent) == {
        "http.response.header.content-type": ["application/json"],
        "http.response.header.set-cookie": ["[REDACTED]"],
    }
    assert attributes.request_attributes(sent) == {}, "responses only"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({REQUEST: "x-(trip"}, REQUEST),
        ({RESPONSE: "content-type)"}, RESPONSE),
        ({REQUEST: ".*", SANITIZE: "(?i)secret"}, SANITIZE),  # flags only at the start
        # A comment left open would swallow what follows it: the credentials come first.
        ({REQUEST: ".*", SANITIZE: "x(?#"}, SANITIZE),
    ],
)
def test_a_pattern_that_does_not_compile_stops_start_up(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{variable} is not a list of regular expressions"):
        HeaderCapture.from_environ(environ)
