"""The frontend's files themselves: versioned asset URLs, no HTML sinks, nothing inline."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

from tests.e2e.nginx import FRONTEND_DIR, TEMPLATE, TEMPLATE_VARIABLES, template_variables

PAGE = FRONTEND_DIR / "frontend.html"
VERSIONED_URL = re.compile(r"""(?:src|href)="([\w.-]+)\?v=([0-9a-f]+)\"""")


def content_version(name: str) -> str:
    """The ``?v=`` a file's URL must carry: the first 10 hex digits of its SHA-256."""
    return hashlib.sha256((FRONTEND_DIR / name).read_bytes()).hexdigest()[:10]


def test_asset_urls_carry_the_content_hash_of_their_file() -> None:
    # NGINX caches ?v= URLs for a year, so a stale version would serve an old file.
    page = PAGE.read_text()
    found = VERSIONED_URL.findall(page)
    assert {name for name, _ in found} == {"app.js", "style.css", "favicon.svg"}
    wrong = {f"{name}?v={v}": f"{name}?v={content_version(name)}" for name, v in found}
    wrong = {old: new for old, new in wrong.items() if old != new}
    assert not wrong, f"update frontend/frontend.html: {wrong}"


def test_every_page_asset_is_versioned_or_not_cached() -> None:
    """Every local URL in the page is versioned; only config.json (fetched) is not."""

    class Urls(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.urls += [v for k, v in attrs if k in ("src", "href") and v and v[0] != "#"]

    parser = Urls()
    parser.feed(PAGE.read_text())
    assert parser.urls
    assert all(re.fullmatch(r"[\w.-]+\?v=[0-9a-f]{10}", url) for url in parser.urls), parser.urls


def test_no_inline_script_style_or_handlers() -> None:
    """The CSP allows none of these; a static check names the culprit before the browser does."""

    class Inline(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {k for k, _ in attrs}
            if tag == "style" or (tag == "script" and "src" not in names):
                self.found.append(f"<{tag}> element")
            self.found += [f"{k}= on <{tag}>" for k in names if k == "style" or k.startswith("on")]

    parser = Inline()
    parser.feed(PAGE.read_text())
    assert parser.found == []


def test_script_has_no_html_sinks() -> None:
    """User and AI text reach the page as text only (Trusted Types enforce it at run time)."""
    script = (FRONTEND_DIR / "app.js").read_text()
    sinks = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("]
    assert [sink for sink in sinks if sink in script] == []


def test_config_ships_with_trace_links_hidden() -> None:
    assert json.loads((FRONTEND_DIR / "config.json").read_text()) == {"jaegerBaseUrl": ""}


def test_template_uses_only_the_agreed_variables() -> None:
    # envsubst in the image replaces every defined variable it sees; the Dockerfile, compose
    # and k8s define exactly these.
    assert template_variables(TEMPLATE.read_text()) == TEMPLATE_VARIABLES
