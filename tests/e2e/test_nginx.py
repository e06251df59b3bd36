"""The NGINX template, run for real: what it serves, proxies, adds, logs and refuses.

Three NGINX instances from the same template: one in front of the real service, one in
front of an upstream that echoes the request headers it receives (to see exactly what
NGINX forwards), and one in front of a port nothing listens on (the service is down).
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.e2e.conftest import StartModuleService
from tests.e2e.nginx import (
    FRONTEND_DIR,
    OIDC_ORIGIN_FILE,
    TRUSTED_PROXIES_FILE,
    NginxServer,
    read_oidc_origin,
    write_oidc_origin,
    write_trusted_proxies,
)
from tests.support.binaries import require_binary
from tests.support.service import ServiceProcess, free_port

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
LONG_CACHE = "public, max-age=31536000, immutable"
# The page's policy without OpenID Connect, and the API docs' (tests/security/test_headers.py
# holds the service to the same), written out.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types dompurify"
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; "
    "trusted-types default dompurify docs-dompurify"
)
# An issuer with a path, as most are (Keycloak's realm, Entra ID's tenant): the page's policy
# admits its origin, and nothing of the path.
ISSUER = "https://idp.example.test/realms/chat"
ISSUER_ORIGIN = "https://idp.example.test"
# The shells that run the start-up scripts: the image's is BusyBox's ash; sh here is dash or
# bash.
SHELLS = {"sh": ("sh",), "busybox": ("busybox", "sh")}


class Reply:
    def __init__(self, status: int, headers: Message, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    server: NginxServer,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One raw HTTP/1.1 request: the path goes out exactly as given (no normalising)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


class _EchoHeaders(BaseHTTPRequestHandler):
    """An upstream that answers every request with the headers it received, as JSON."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # What NGINX must replace rather than pass on twice.
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("Cache-Control", "public, max-age=600")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _echo

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the echoed JSON, not stderr."""


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service()


@pytest.fixture(scope="module")
def echo_nginx(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-echo"),
        service_url=f"http://127.0.0.1:{upstream.server_address[1]}",
    ) as server:
        yield server
    upstream.shutdown()
    upstream.server_close()


@pytest.fixture(scope="module")
def dead_nginx(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-dead"),
        service_url=f"http://127.0.0.1:{free_port()}",
    ) as server:
        yield server


def test_nginx_t_accepts_the_rendered_template(nginx_binary: str, tmp_path: Path) -> None:
    server = NginxServer(binary=nginx_binary, workdir=tmp_path, service_url="http://127.0.0.1:9")
    server.write_config()
    result = server.check_config()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "trusted",
    ["", "10.244.0.0/16", "10.0.0.0/8,172.16.0.0/12, 192.168.0.0/16 fd00::/8 203.0.113.7"],
)
def test_nginx_t_accepts_the_trusted_proxies_the_start_up_script_writes(
    nginx_binary: str, tmp_path: Path, trusted: str
) -> None:
    server = NginxServer(
        binary=nginx_binary,
        workdir=tmp_path,
        service_url="http://127.0.0.1:9",
        trusted_proxies=trusted,
    )
    server.write_config()
    result = server.check_config()
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr
    written = (tmp_path / "conf.d" / TRUSTED_PROXIES_FILE).read_text()
    listed = [entry for entry in re.split(r"[,\s]+", trusted) if entry]
    assert re.findall(r"^set_real_ip_from (\S+);$", written, re.MULTILINE) == listed


@pytest.mark.parametrize(
    "bad",
    [
        "10.0.0.0/8;} server {",  # configuration, not an address
        "ingress.example",  # a host name: NGINX would look it up once, at start
        "cafe",  # hex digits but no colon: a host name too
        "10.0.0.0/8, 0.0.0.0/0",  # everyone: any client could name itself
        "::/0",
        "*",
    ],
)
def test_the_start_up_script_refuses_what_is_not_a_proxy_address(tmp_path: Path, bad: str) -> None:
    """The container stops (the entrypoint runs the script under set -e) rather than start
    with a trust list other than the one asked for."""
    result = write_trusted_proxies(tmp_path, bad)
    assert result.returncode != 0
    assert "NGINX_TRUSTED_PROXIES" in result.stderr
    assert not (tmp_path / TRUSTED_PROXIES_FILE).exists()


def shell(name: str) -> tuple[str, ...]:
    """The command that runs a start-up script in the named shell (BusyBox may be missing)."""
    if name == "busybox":
        require_binary("busybox", package="busybox")
    return SHELLS[name]


@pytest.mark.parametrize("shell_name", SHELLS)
@pytest.mark.parametrize(
    ("issuer", "origin"),
    [
        ("", ""),
        ("  \t\n", ""),  # only white space: unset, as the service takes it
        (ISSUER, ISSUER_ORIGIN),
        (" https://idp.example.test/realms/chat\n", ISSUER_ORIGIN),
        ("https://login.microsoftonline.com/0b5e0c1c-7f2a-4c8e-9d41-3a6f2b8e1d57/v2.0", None),
        ("https://chat-dev.eu.auth0.com/", None),
        ("https://sso.example.com:8443/realms/my_realm", None),
        ("HTTPS://SSO.Example.COM:443/realms/chat", "https://sso.example.com"),
        ("https://203.0.113.7:9443/", None),
        ("http://localhost:8080/realms/chat", None),
        ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ("https://xn--bcher-kva.example/", None),
    ],
)
def test_the_oidc_start_up_script_writes_the_issuers_origin(
    tmp_path: Path, shell_name: str, issuer: str, origin: str | None
) -> None:
    """The origin, as the service derives it for its own policy (yarl's URL.origin()):
    lower case, the scheme's default port dropped, no path."""
    result = write_oidc_origin(tmp_path, issuer, shell=shell(shell_name))
    assert result.returncode == 0, result.stderr
    if origin is None:
        origin = str(URL(issuer.strip()).origin())
    assert read_oidc_origin(tmp_path) == (f" {origin}" if origin else "")
    if issuer.strip():
        assert str(URL(issuer.strip()).origin()) == origin


@pytest.mark.parametrize("shell_name", SHELLS)
@pytest.mark.parametrize(
    "bad",
    [
        "https://a.example; script-src *",  # a second directive
        "https://a.example 'unsafe-inline'",  # another source
        "https://a.example https://b.example",
        "https://a.example,https://b.example",
        "https://a.example\nscript-src *",  # a new line in the policy, or in NGINX's file
        "https://a.example\r\nX-Evil: 1",  # a header of its own
        'https://a.example/"; add_header X-Evil 1; #',  # out of NGINX's quoted string
        "https://a.example/'",
        'https://a.example/"',
        "https://a.example/\\",
        "https://$host/",  # an NGINX variable
        "https://a.example/${CHAT_SERVICE_URL}",
        "https://a.example/{x}",
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://a.example/",
        "https://",
        "https:///realms/chat",
        "a.example",
        "//a.example/",
        "http://idp.example.test/",  # plain HTTP to anywhere but this machine
        "http://localhost.evil.example/",
        "https://user:password@a.example/",
        "https://a.example/x?y=1",
        "https://a.example/#x",
        "https://[::1]:8443/",  # CSP cannot name an IPv6 address
        "https://a.example:0/",
        "https://a.example:65536/",
        "https://a.example:08443/",
        "https://a.example:/",
        "https://a.example:x/",
        "https://a.example:1:2/",
        "https://-a.example/",
        "https://a-.example/",
        "https://a..example/",
        "https://.a.example/",
        "https://a.example./",
        "https://a_b.example/",
        "https://a.example.123/",  # ends in a number: a URL parser's IPv4 address
        "https://1.2.3/",
        "https://1.2.3.4.5/",
        "https://1.2.3.256/",
        "https://01.2.3.4/",
        "https://b\u00fccher.example/",  # not ASCII: write it as xn--...
    ],
)
def test_the_oidc_start_up_script_refuses_what_is_not_an_issuer(
    tmp_path: Path, shell_name: str, bad: str
) -> None:
    """The container stops (the entrypoint runs the script under set -e), and no file is
    left for NGINX to start with: not even one an earlier start wrote."""
    (tmp_path / OIDC_ORIGIN_FILE).write_text('map "" $chat_csp_oidc_origin { default ""; }\n')
    result = write_oidc_origin(tmp_path, bad, shell=shell(shell_name))
    assert result.returncode != 0
    assert "CHAT_OIDC_ISSUER" in result.stderr
    assert not (tmp_path / OIDC_ORIGIN_FILE).exists()


@pytest.mark.parametrize("issuer", ["", ISSUER, "http://127.0.0.1:8080/realms/chat"])
def test_nginx_t_accepts_the_oidc_origin_the_start_up_script_writes(
    nginx_binary: str, tmp_path: Path, issuer: str
) -> None:
    server = NginxServer(
        binary=nginx_binary, workdir=tmp_path, service_url="http://127.0.0.1:9", oidc_issuer=issuer
    )
    server.write_config()
    result = server.check_config()
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def oidc_nginx(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """The template with CHAT_OIDC_ISSUER set; the page and its files need no upstream."""
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-oidc"),
        service_url=f"http://127.0.0.1:{free_port()}",
        oidc_issuer=ISSUER,
    ) as server:
        yield server


def test_without_an_issuer_the_policies_are_the_ones_without_sign_in(
    nginx: NginxServer,
) -> None:
    for path in ("/", "/frontend.html", "/app.js", "/style.css", "/chat/history", "/nope"):
        assert call(nginx, path).headers.get_all("Content-Security-Policy") == [PAGE_POLICY]
    for path in ("/docs", "/docs.html"):
        assert call(nginx, path).headers.get_all("Content-Security-Policy") == [DOCS_POLICY]


def test_the_page_may_connect_to_the_issuers_origin_and_nowhere_else(
    oidc_nginx: NginxServer,
) -> None:
    expected = PAGE_POLICY.replace("connect-src 'self';", f"connect-src 'self' {ISSUER_ORIGIN};")
    assert expected != PAGE_POLICY
    for path in ("/", "/frontend.html", "/app.js", "/style.css"):
        reply = call(oidc_nginx, path)
        assert reply.status == 200, path
        assert reply.headers.get_all("Content-Security-Policy") == [expected], path
        policy = reply.headers["Content-Security-Policy"]
        directives = [d.strip() for d in policy.split(";")]
        assert [d for d in directives if d.startswith("connect-src")] == [
            f"connect-src 'self' {ISSUER_ORIGIN}"
        ]
        assert ISSUER_ORIGIN not in policy.replace(f"connect-src 'self' {ISSUER_ORIGIN};", "")
    # The API docs never talk to the issuer: their policy stays 'self' only.
    for path in ("/docs", "/docs.html"):
        assert call(oidc_nginx, path).headers.get_all("Content-Security-Policy") == [DOCS_POLICY]


@pytest.mark.parametrize("path", ["/", "/frontend.html"])
def test_serves_the_page(nginx: NginxServer, path: str) -> None:
    reply = call(nginx, path)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert reply.body == (FRONTEND_DIR / "frontend.html").read_bytes()


def test_every_response_carries_the_security_headers(nginx: NginxServer) -> None:
    replies = {
        "page": call(nginx, "/"),
        "asset": call(nginx, "/app.js"),
        "api": call(nginx, "/chat/history"),
        "api error": call(nginx, "/chat/message", method="POST", body=b"{}"),
        "not found": call(nginx, "/nope"),
        "wrong method": call(nginx, "/app.js", method="POST", body=b"x"),
        "probe": call(nginx, "/nginx-health"),
    }
    assert [r.status for r in replies.values()] == [200, 200, 200, 400, 404, 405, 200]
    for name, reply in replies.items():
        for header, value in SECURITY_HEADERS.items():
            assert reply.headers.get_all(header) == [value], (name, header)
        csp = reply.headers["Content-Security-Policy"]
        for directive in (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ):
            assert directive in csp, (name, directive)
        assert "unsafe-" not in csp
        assert "camera=()" in reply.headers["Permissions-Policy"], name
        assert reply.headers["X-Request-ID"], name


def test_serves_the_api_docs_under_their_own_policy(nginx: NginxServer) -> None:
    page_policy = call(nginx, "/").headers["Content-Security-Policy"]
    for path in ("/docs", "/docs.html"):
        reply = call(nginx, path)
        assert reply.status == 200, path
        assert reply.body == (FRONTEND_DIR / "docs.html").read_bytes()
        assert reply.headers["Cache-Control"] == "no-cache"
        policy = reply.headers["Content-Security-Policy"]
        assert policy != page_policy
        assert "img-src 'self' data:;" in policy
        assert "require-trusted-types-for 'script'" in policy
        assert "unsafe-" not in policy
        for header, value in SECURITY_HEADERS.items():
            assert reply.headers.get_all(header) == [value], (path, header)
    # Swagger UI's stylesheet and bundle come from vendor/ like the page's libraries.
    if (FRONTEND_DIR / "vendor" / "swagger-ui.css").is_file():
        stylesheet = call(nginx, "/vendor/swagger-ui.css")
        assert stylesheet.status == 200
        assert stylesheet.headers["Content-Type"].startswith("text/css")
        assert stylesheet.headers["Content-Security-Policy"] == page_policy
    assert call(nginx, "/vendor/swagger-ui.css.map").status == 404


def test_no_versions_in_the_server_header(nginx: NginxServer) -> None:
    for path in ("/", "/chat/history", "/nope"):
        assert call(nginx, path).headers.get_all("Server") == ["nginx"], path


def test_cache_headers(nginx: NginxServer) -> None:
    assert call(nginx, "/app.js?v=0123456789").headers["Cache-Control"] == LONG_CACHE
    assert call(nginx, "/style.css?v=0123456789").headers["Cache-Control"] == LONG_CACHE
    # Without a version the URL's content can change: revalidate.
    assert call(nginx, "/app.js").headers["Cache-Control"] == "no-cache"
    for path in ("/", "/frontend.html", "/config.json"):
        assert call(nginx, path).headers["Cache-Control"] == "no-cache", path
    for path in ("/chat/history", "/healthz", "/readyz", "/openapi.json"):
        assert call(nginx, path).headers.get_all("Cache-Control") == ["no-store"], path


def test_text_is_gzipped(nginx: NginxServer) -> None:
    for name in ("app.js", "style.css", "frontend.html"):
        reply = call(nginx, f"/{name}", headers={"Accept-Encoding": "gzip"})
        assert reply.headers["Content-Encoding"] == "gzip", name
        assert "Accept-Encoding" in reply.headers["Vary"]
        assert gzip.decompress(reply.body) == (FRONTEND_DIR / name).read_bytes()
    spec = call(nginx, "/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert spec.headers["Content-Encoding"] == "gzip"
    assert "paths" in json.loads(gzip.decompress(spec.body))


@pytest.mark.parametrize(
    "path",
    [
        "/nginx.conf.template",
        "/docs/screenshot.png",
        "/../README.md",
        "/%2e%2e/README.md",
        "/metrics",
        "/frontend.html/",
    ],
)
def test_serves_nothing_but_the_page_files(nginx: NginxServer, path: str) -> None:
    reply = call(nginx, path)
    assert reply.status in (400, 404), path
    if reply.status == 404:
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
        assert reply.json() == {"status": "error", "message": "Not found."}


def test_proxies_the_contract(nginx: NginxServer) -> None:
    sent = call(
        nginx,
        "/chat/message",
        method="POST",
        body=json.dumps({"message": "through nginx"}).encode(),
        headers={"Content-Type": "application/json", "traceparent": TRACEPARENT},
    )
    assert sent.status == 200
    assert sent.json()["status"] == "Success"
    # The service continued the browser's trace: traceparent reached it.
    assert sent.headers["traceresponse"].split("-")[1] == TRACEPARENT.split("-")[1]
    history = call(nginx, "/chat/history?limit=1")
    assert history.json()[-1]["user"] == "through nginx"
    blank = call(nginx, "/chat/message", method="POST", body=b'{"message": " "}')
    assert blank.status == 400
    assert blank.json() == {"status": "error", "message": "Field 'message' must not be blank."}
    for path in ("/healthz", "/readyz"):
        assert call(nginx, path).status == 200, path


def test_forwards_client_and_trace_headers(echo_nginx: NginxServer) -> None:
    reply = call(
        echo_nginx,
        "/chat/message",
        method="POST",
        body=b"{}",
        headers={
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=1",
            "X-Request-ID": "req-42",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    seen = reply.json()
    assert seen["traceparent"] == TRACEPARENT
    assert seen["tracestate"] == "vendor=1"
    assert seen["x-request-id"] == "req-42"
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-real-ip"] == "127.0.0.1"
    # The host as the browser sent it, with its port: what the CSRF check compares with
    # Origin.
    assert seen["host"] == seen["x-forwarded-host"] == f"127.0.0.1:{echo_nginx.port}"
    assert reply.headers.get_all("X-Request-ID") == ["req-42"]
    # NGINX's own policy replaces the upstream's, never doubles it.
    assert reply.headers.get_all("X-Frame-Options") == ["DENY"]
    assert reply.headers.get_all("Cache-Control") == ["no-store"]


def test_makes_up_a_request_id_when_the_client_has_none_or_a_bad_one(
    echo_nginx: NginxServer,
) -> None:
    for headers in ({}, {"X-Request-ID": 'no spaces or quotes"allowed'}):
        reply = call(echo_nginx, "/chat/history", headers=headers)
        made_up = reply.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made_up), made_up
        assert reply.json()["x-request-id"] == made_up


def test_upstream_down_is_a_json_502(dead_nginx: NginxServer) -> None:
    reply = call(dead_nginx, "/chat/message", method="POST", body=b'{"message": "hi"}')
    assert reply.status == 502
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.json() == {
        "status": "error",
        "message": "The chat service is unavailable. Try again in a moment.",
    }
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    # The probe does not depend on the service.
    probe = call(dead_nginx, "/nginx-health")
    assert (probe.status, probe.body) == (200, b"ok\n")


def test_oversized_body_is_a_json_413_from_nginx(nginx: NginxServer) -> None:
    reply = call(nginx, "/chat/message", method="POST", body=b"x" * (2 * 1024 * 1024))
    assert reply.status == 413
    assert reply.json() == {"status": "error", "message": "Request body is too large."}


def test_below_nginx_limit_the_service_answers_413_itself(nginx: NginxServer) -> None:
    reply = call(nginx, "/chat/message", method="POST", body=b"x" * (100 * 1024))
    assert reply.status == 413
    assert reply.json()["message"].startswith("Request body is larger than")


def test_json_access_log_with_request_and_upstream_time(nginx: NginxServer) -> None:
    call(nginx, "/chat/history", headers={"X-Request-ID": "log-me", "traceparent": TRACEPARENT})
    call(nginx, "/nginx-health")
    entries = nginx.access_log()  # json.loads on every line: each must be one JSON object
    entry = next(e for e in entries if e["request_id"] == "log-me")
    assert entry["uri"] == "/chat/history"
    assert entry["status"] == 200
    assert isinstance(entry["request_time"], float)
    assert float(entry["upstream_response_time"]) >= 0
    assert entry["upstream_status"] == "200"
    assert entry["traceparent"] == TRACEPARENT
    # Probes are not logged: they would drown the real traffic.
    assert not any(e["uri"] == "/nginx-health" for e in entries)


def test_header_fields_up_to_the_services_limit_pass_and_larger_are_431(
    nginx: NginxServer,
) -> None:
    """The service takes header fields up to 32 KiB (a large organisation's bearer token):
    NGINX lets them through, and answers larger ones itself, with the error shape."""
    passed = call(nginx, "/chat/history?conversation_id=padded", headers={"X-Pad": "p" * 30_000})
    assert (passed.status, passed.json()) == (200, [])
    refused = call(nginx, "/chat/history", headers={"X-Pad": "p" * 40_000})
    assert refused.status == 431
    assert refused.headers["Content-Type"] == "application/json; charset=utf-8"
    assert refused.json() == {
        "status": "error",
        "message": "The request line or a header field is larger than 32 KiB.",
    }
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
