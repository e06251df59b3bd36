"""Serve the browser frontend from CHAT_FRONTEND_DIR, for running without NGINX.

Each servable file found at start-up gets its own route (``/`` is ``frontend.html``), so
unknown paths still 404 with the JSON error shape and nothing outside the folder, nor the
NGINX template or npm's files inside it, can be reached. The page's libraries, which
``npm ci`` copies into ``vendor/``, are served from ``/vendor/`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from chat_service.api.security import DOCS_CONTENT_SECURITY_POLICY, page_content_security_policy

log = logging.getLogger(__name__)

INDEX = "frontend.html"
# The interactive API docs (Swagger UI), also at /docs, under a policy of their own.
DOCS = "docs.html"
# Pages with a route of their own besides /{file}.
PAGE_ROUTES = {INDEX: "/", DOCS: "/docs"}
SERVED_SUFFIXES = frozenset({".html", ".js", ".css", ".json", ".svg", ".png", ".ico"})
# npm's files and the type check's settings in the folder: what the page is built and checked
# with, not part of it.
NOT_SERVED = frozenset({"package.json", "package-lock.json", "jsconfig.json"})
VENDOR = "vendor"
# The libraries' scripts, and Swagger UI's stylesheet.
VENDOR_SUFFIXES = frozenset({".js", ".css"})


def add_frontend_routes(
    app: web.Application, folder: Path, *, oidc_issuer: str | None = None
) -> None:
    """Route ``/`` and ``/{file}`` to the servable files directly inside ``folder``, and
    ``/vendor/{file}`` to the scripts directly inside its ``vendor`` folder. The pages get
    policies of their own: the chat page's may connect to ``oidc_issuer`` to sign in."""
    if not folder.is_dir():
        log.warning("CHAT_FRONTEND_DIR %s is not a folder; not serving a frontend", folder)
        return
    page_headers = {
        INDEX: {"Content-Security-Policy": page_content_security_policy(oidc_issuer)},
        DOCS: {"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY},
    }
    for path in _servable(folder, SERVED_SUFFIXES):
        handler = _file_handler(path.resolve(), page_headers.get(path.name, {}))
        app.router.add_get(f"/{path.name}", handler)
        if (route := PAGE_ROUTES.get(path.name)) is not None:
            app.router.add_get(route, handler)
    vendor = folder / VENDOR
    if vendor.is_dir():
        for path in _servable(vendor, VENDOR_SUFFIXES):
            app.router.add_get(f"/{VENDOR}/{path.name}", _file_handler(path.resolve(), {}))


def _servable(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return [
        path
        for path in sorted(folder.iterdir())
        if path.is_file()
        and path.suffix in suffixes
        and not path.name.startswith(".")
        and path.name not in NOT_SERVED
    ]


def _file_handler(path: Path, headers: Mapping[str, str]) -> Handler:
    async def serve(request: web.Request) -> web.FileResponse:
        # no-cache: revalidate every time, so an edited page shows on the next reload.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache", **headers})

    return serve
