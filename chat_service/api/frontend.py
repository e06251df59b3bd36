"""Serve the browser frontend from CHAT_FRONTEND_DIR, for running without NGINX.

Each servable file found at start-up gets its own route (``/`` is ``frontend.html``), so
unknown paths still 404 with the JSON error shape and nothing outside the folder, nor the
NGINX template inside it, can be reached.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)

INDEX = "frontend.html"
SERVED_SUFFIXES = frozenset({".html", ".js", ".css", ".json", ".svg", ".png", ".ico"})


def add_frontend_routes(app: web.Application, folder: Path) -> None:
    """Route ``/`` and ``/{file}`` to the servable files directly inside ``folder``."""
    if not folder.is_dir():
        log.warning("CHAT_FRONTEND_DIR %s is not a folder; not serving a frontend", folder)
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in SERVED_SUFFIXES and not path.name.startswith("."):
            handler = _file_handler(path.resolve())
            app.router.add_get(f"/{path.name}", handler)
            if path.name == INDEX:
                app.router.add_get("/", handler)


def _file_handler(path: Path) -> Handler:
    async def serve(request: web.Request) -> web.FileResponse:
        # no-cache: revalidate every time, so an edited page shows on the next reload.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve
