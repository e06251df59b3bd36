"""HTTP headers on request spans, as OpenTelemetry's HTTP instrumentations capture them.

The service makes its request spans itself (api/telemetry.py) instead of with the contrib
aiohttp-server instrumentation, and honours that instrumentation's header variables, so the
documented switches work here too:

- OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, ..._SERVER_RESPONSE: comma-separated
  header names or regular expressions (matched whole, ignoring case) to put on the span as
  ``http.request.header.<name>`` / ``http.response.header.<name>``, each a list of the
  header's values; nothing by default (the conventions ask for explicit configuration);
- OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS: regular expressions (found
  anywhere in a name, ignoring case) of headers whose values are shown as ``[REDACTED]``.

Matching and redacting are opentelemetry-util-http's, the helpers the contrib
instrumentations share, so a configuration means the same here as there. Two things differ,
on purpose. Credentials are redacted whatever the variables say, even when a header is
listed by name or ``.*`` is captured: a trace store is read by more people than the
service's callers trust with their keys. And the names keep their dashes
(``http.request.header.content-type``), as the stable HTTP conventions the service's other
span attributes follow name them; util-http's normalise_request_header_name still makes
them underscores, as the conventions did before they were stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    SanitizeValue,
)

from chat_service.config import ConfigError

REQUEST_PREFIX = "http.request.header."
RESPONSE_PREFIX = "http.response.header."
# Headers that carry credentials: the service's API keys and bearer tokens (Authorization),
# and what a browser or a proxy adds. Whole names, ignoring case (util-http's sanitizer
# searches, and ignores case).
ALWAYS_REDACTED = ("authorization", "proxy-authorization", "cookie", "set-cookie")
_ALWAYS_REDACTED_PATTERN = f"^(?:{'|'.join(ALWAYS_REDACTED)})$"


@dataclass(frozen=True, slots=True)
class HeaderCapture:
    """Which headers go on a recorded request span, read once at start-up. ``request`` and
    ``response`` are the capture patterns (empty: none of that side); ``sanitizer`` redacts
    the credentials and what SANITIZE_FIELDS names."""

    request: tuple[str, ...]
    response: tuple[str, ...]
    sanitizer: SanitizeValue

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HeaderCapture | None:
        """The capture the variables ask for; None when they capture nothing (then a request
        costs nothing more). A pattern that does not compile stops start-up, naming its
        variable, rather than failing on the first request."""
        request = _patterns(environ, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
        response = _patterns(environ, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE)
        if not request and not response:
            return None
        # Ours first and whole: nothing listed after them can change what they match.
        sanitized = (
            _ALWAYS_REDACTED_PATTERN,
            *_patterns(environ, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
        )
        # Compiled as util-http compiles them: joined into one, ignoring case.
        _check(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, request)
        _check(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE, response)
        _check(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, sanitized)
        return cls(request, response, SanitizeValue(sanitized))

    def request_attributes(self, headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """``http.request.header.*`` for the request's ``(name, value)`` pairs."""
        return self._attributes(headers, self.request, REQUEST_PREFIX)

    def response_attributes(self, headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """``http.response.header.*`` for the response's ``(name, value)`` pairs, as sent."""
        return self._attributes(headers, self.response, RESPONSE_PREFIX)

    def _attributes(
        self, headers: Iterable[tuple[str, str]], patterns: tuple[str, ...], prefix: str
    ) -> dict[str, list[str]]:
        if not patterns:
            return {}
        # Every value of a repeated header (util-http keeps the last of a name's pairs).
        values: dict[str, list[str]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        return self.sanitizer.sanitize_header_values(
            values, list(patterns), lambda name: prefix + name
        )


def _patterns(environ: Mapping[str, str], variable: str) -> tuple[str, ...]:
    """A variable's comma-separated patterns, blanks dropped. Read from ``environ`` (util-http's
    get_custom_headers reads only the process's environment)."""
    return tuple(part.strip() for part in environ.get(variable, "").split(",") if part.strip())


def _check(variable: str, patterns: tuple[str, ...]) -> None:
    try:
        re.compile("|".join(patterns), re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{variable} is not a list of regular expressions: {exc}") from None
