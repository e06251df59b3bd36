"""CHAT_FRONTEND_DIR: the service serves the page's files and nothing else."""

from __future__ import annotations

from pathlib import Path

from tests.unit.conftest import MakeClient


async def test_serves_the_page_and_its_assets_only(make_client: MakeClient, tmp_path: Path) -> None:
    folder = tmp_path / "frontend"
    folder.mkdir()
    (folder / "frontend.html").write_text("<!doctype html><title>chat</title>")
    (folder / "app.js").write_text("console.log('hi')")
    (folder / "nginx.conf.template").write_text("server {}")
    (folder / "docs").mkdir()
    (tmp_path / "secret.txt").write_text("do not serve")

    client = await make_client(frontend_dir=folder)
    for path in ("/", "/frontend.html"):
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<title>chat</title>" in await response.text()
    script = await client.get("/app.js")
    assert script.status == 200
    assert "javascript" in script.content_type
    for path in ("/nginx.conf.template", "/docs", "/../secret.txt", "/%2e%2e/secret.txt"):
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["status"] == "error"
    # The API still wins over the frontend.
    assert (await client.get("/chat/history")).status == 200


async def test_without_a_frontend_root_is_404(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/")
    assert response.status == 404
    assert await response.json() == {"status": "error", "message": "Not found."}


async def test_serves_the_vendored_libraries_and_not_npms_files(
    make_client: MakeClient, tmp_path: Path
) -> None:
    folder = tmp_path / "frontend"
    (folder / "vendor").mkdir(parents=True)
    (folder / "node_modules" / "marked").mkdir(parents=True)
    (folder / "frontend.html").write_text("<!doctype html>")
    (folder / "config.json").write_text("{}")
    (folder / "package.json").write_text('{"name": "page"}')
    (folder / "package-lock.json").write_text("{}")
    (folder / "jsconfig.json").write_text("{}")
    (folder / "copy-vendor.mjs").write_text("// build step")
    (folder / "vendor" / "marked.js").write_text("export const marked = 1;")
    (folder / "vendor" / "notes.txt").write_text("not a script")
    (folder / "node_modules" / "marked" / "index.js").write_text("module.exports = 1;")

    client = await make_client(frontend_dir=folder)
    library = await client.get("/vendor/marked.js")
    assert library.status == 200
    assert "javascript" in library.content_type
    assert await library.text() == "export const marked = 1;"
    assert (await client.get("/config.json")).status == 200
    for path in (
        "/package.json",
        "/package-lock.json",
        "/jsconfig.json",
        "/copy-vendor.mjs",
        "/vendor/notes.txt",
        "/vendor/",
        "/node_modules/marked/index.js",
        "/vendor/../package.json",
    ):
        assert (await client.get(path)).status == 404, path


async def test_serves_the_api_docs_under_their_own_policy(
    make_client: MakeClient, tmp_path: Path
) -> None:
    folder = tmp_path / "frontend"
    (folder / "vendor").mkdir(parents=True)
    (folder / "frontend.html").write_text("<!doctype html><title>chat</title>")
    (folder / "docs.html").write_text("<!doctype html><title>API</title>")
    (folder / "vendor" / "swagger-ui.css").write_text("body {}")

    client = await make_client(frontend_dir=folder)
    page = await client.get("/")
    page_policy = page.headers["Content-Security-Policy"]
    assert "trusted-types dompurify" in page_policy
    for path in ("/docs", "/docs.html"):
        response = await client.get(path)
        assert response.status == 200, path
        assert "<title>API</title>" in await response.text()
        policy = response.headers["Content-Security-Policy"]
        assert policy != page_policy
        assert "img-src 'self' data:;" in policy
        assert policy.endswith(
            "require-trusted-types-for 'script'; trusted-types default dompurify docs-dompurify"
        )
    stylesheet = await client.get("/vendor/swagger-ui.css")
    assert stylesheet.status == 200
    assert stylesheet.content_type == "text/css"
    assert stylesheet.headers["Content-Security-Policy"] == page_policy
    assert (await client.get("/docs/")).status == 404


async def test_no_docs_without_their_page(make_client: MakeClient, tmp_path: Path) -> None:
    folder = tmp_path / "frontend"
    folder.mkdir()
    (folder / "frontend.html").write_text("<!doctype html>")
    client = await make_client(frontend_dir=folder)
    response = await client.get("/docs")
    assert response.status == 404
    assert (await response.json())["status"] == "error"
