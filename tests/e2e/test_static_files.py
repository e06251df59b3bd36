"""The frontend's files themselves: versioned asset URLs, no HTML sinks, nothing inline."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from tests.e2e.nginx import FRONTEND_DIR, TEMPLATE, TEMPLATE_VARIABLES, template_variables

# Each page and the versioned files it loads (vendor/ is not versioned: see below).
PAGES = {
    "frontend.html": {"app.js", "style.css", "favicon.svg"},
    "docs.html": {"docs.js", "docs.css", "favicon.svg"},
}
# The modules each page loads itself; the others are imported from these.
ENTRY_MODULES = {"app.js", "docs.js"}
VERSIONED_URL = re.compile(r"""(?:src|href)="([\w.-]+)\?v=([0-9a-f]+)\"""")
# The page's own ES modules (vendor/ holds the npm libraries, which are not ours).
MODULES = sorted(path.name for path in FRONTEND_DIR.glob("*.js"))
# `import ... from "./x.js?v=..."` and `import("./x.js")`: the relative specifiers.
IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["'](\./[^"']+)["']""")


def content_version(name: str) -> str:
    """The ``?v=`` a file's URL must carry: the first 10 hex digits of its SHA-256."""
    return hashlib.sha256((FRONTEND_DIR / name).read_bytes()).hexdigest()[:10]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_asset_urls_carry_the_content_hash_of_their_file(page: str) -> None:
    # NGINX caches ?v= URLs for a year, so a stale version would serve an old file.
    found = VERSIONED_URL.findall((FRONTEND_DIR / page).read_text())
    assert {name for name, _ in found} == PAGES[page]
    wrong = {f"{name}?v={v}": f"{name}?v={content_version(name)}" for name, v in found}
    wrong = {old: new for old, new in wrong.items() if old != new}
    assert not wrong, f"update frontend/{page}: {wrong}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_asset_is_versioned_or_not_cached(page: str) -> None:
    """Every local URL in a page is versioned, but the npm libraries in vendor/ (not in git,
    so revalidated) and the links to other pages and the OpenAPI document."""

    class Urls(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.urls += [v for k, v in attrs if k in ("src", "href") and v and v[0] != "#"]

    parser = Urls()
    parser.feed((FRONTEND_DIR / page).read_text())
    assert parser.urls
    unversioned = {
        "vendor/swagger-ui.css",
        "vendor/swagger-ui-bundle.js",
        "openapi.json",
        "docs",
        "./",
    }
    urls = [url for url in parser.urls if url not in unversioned]
    assert all(re.fullmatch(r"[\w.-]+\?v=[0-9a-f]{10}", url) for url in urls), parser.urls


@pytest.mark.parametrize("page", sorted(PAGES))
def test_no_inline_script_style_or_handlers(page: str) -> None:
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
    parser.feed((FRONTEND_DIR / page).read_text())
    assert parser.found == []


def test_module_imports_carry_the_content_hash_of_their_file() -> None:
    """app.js is versioned in the page, the modules it imports in app.js, and so on: a changed
    module changes its importer's hash too, so no cached URL ever serves an old file.

    The npm libraries in vendor/ are the exception: their content comes from `npm ci`, not
    from git, so their URLs are plain and NGINX has browsers revalidate them.
    """
    imported: set[str] = set()
    wrong: dict[str, str] = {}
    for module in MODULES:
        for specifier in IMPORT.findall((FRONTEND_DIR / module).read_text()):
            path, _, version = specifier.removeprefix("./").partition("?v=")
            if path.startswith("vendor/"):
                assert not version, f"{module}: {specifier} (vendor/ is not in git)"
                continue
            imported.add(path)
            if version != content_version(path):
                wrong[f"{module}: {specifier}"] = f"./{path}?v={content_version(path)}"
    assert not wrong, f"update the imports: {wrong}"
    # Every module is reached from a page, so each is covered by one of these checks.
    assert imported | ENTRY_MODULES == set(MODULES)


def test_script_has_no_html_sinks() -> None:
    """User and AI text reach the page as text only (Trusted Types enforce it at run time).

    Replies become DOM nodes inside DOMPurify (a DocumentFragment comes back), so none of the
    page's own modules parses HTML, makes a Trusted Types policy, or evaluates strings. The
    API docs' docs.js is the one module that makes policies (see the next test).
    """
    sinks = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "setHTMLUnsafe",
        "createContextualFragment",
        "parseFromString",
        "srcdoc",
        "document.write",
        "createPolicy",
        "RETURN_TRUSTED_TYPE",
        "eval(",
        "Function(",
    ]
    assert "markdown.js" in MODULES
    found = {
        f"{module}: {sink}"
        for module in MODULES
        for sink in sinks
        if sink in (FRONTEND_DIR / module).read_text()
    }
    assert found == {"docs.js: createPolicy"}


def test_the_docs_make_only_the_policies_their_csp_allows() -> None:
    """docs.js's policies: the default one, which sanitizes (and converts HTML only), and
    its DOMPurify's own; Swagger UI's copy of DOMPurify makes "dompurify"."""
    script = (FRONTEND_DIR / "docs.js").read_text()
    made = re.findall(r'createPolicy\(\s*"([^"]+)"', script)
    assert sorted(made) == ["default", "docs-dompurify"]
    assert script.count("createPolicy(") == 2
    assert "createScript:" not in script
    assert "DOMPurify.sanitize(html" in script


def test_config_ships_with_trace_links_hidden() -> None:
    assert json.loads((FRONTEND_DIR / "config.json").read_text()) == {"jaegerBaseUrl": ""}


def test_template_uses_only_the_agreed_variables() -> None:
    # envsubst in the image replaces every defined variable it sees; the Dockerfile, compose
    # and k8s define exactly these.
    assert template_variables(TEMPLATE.read_text()) == TEMPLATE_VARIABLES
