"""Other sites, for the tests of what pages elsewhere may do with the API (CORS, CSRF).

Each is a tiny static server on its own loopback port serving one empty page: to the browser
a different origin from the service (and from each other), as a page on another site is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

# No favicon request (its 404 would be a console error).
PAGE = b'<!doctype html><html lang=en><link rel=icon href="data:,"><title>elsewhere</title></html>'


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/":  # a query is fine: a sign-in's answer comes so
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def other_sites(count: int) -> Iterator[list[str]]:
    """The origins (``http://127.0.0.1:<port>``) of ``count`` sites, served until the end."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[str, str]]:
    """The origins of two other sites: (one to allow, one not)."""
    with other_sites(2) as (allowed, other):
        yield allowed, other
