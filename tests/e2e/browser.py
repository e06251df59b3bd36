"""The system Chromium under Playwright, and pages that record everything that went wrong.

A :class:`WatchedPage` collects console errors and warnings, uncaught exceptions, dialogs
(``alert()`` and friends) and Content-Security-Policy violations (from the page's own
``securitypolicyviolation`` events), so a test can assert that none happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: CI runs as root. The rest keep Chromium from phoning home, which in a
# loopback-only sandbox means a stream of refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 360, "height": 740}

ColorScheme = Literal["light", "dark"]

# Runs before the page's scripts; the binding is Playwright's, outside the page's CSP.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "(inline)"} ` +
    `at ${event.sourceFile}:${event.lineNumber}`,
  );
});
"""

# Chromium logs every HTTP error response it receives as this console error.
_FAILED_LOAD = "Failed to load resource"
# ... and, for a stylesheet or classic script, refuses the error's body (JSON) with this one,
# located at the page that asked for it.
_REFUSED_TYPE = re.compile(
    r"Refused to (?:apply style|execute script) from '([^']+)' because its MIME type"
)


@dataclass
class WatchedPage:
    """A page in its own browser context, with what went wrong so far."""

    context: BrowserContext
    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected_failed_paths: set[str] = field(default_factory=set)

    def expect_failed_requests(self, *paths: str) -> None:
        """Requests to these paths are meant to fail in this test (the service is down, a 400).

        Chromium reports each such response as a console error; those, and only those, are
        not problems. Any other console error still is.
        """
        self.expected_failed_paths.update(paths)

    def _expected(self, message: ConsoleMessage) -> bool:
        path = urlsplit(message.location.get("url", "")).path
        if message.text.startswith(_FAILED_LOAD):
            return path in self.expected_failed_paths
        refused = _REFUSED_TYPE.match(message.text)
        return refused is not None and urlsplit(refused.group(1)).path in self.expected_failed_paths

    def problems(self) -> list[str]:
        console = [
            f"console {m.type}: {m.text} ({m.location.get('url')})"
            for m in self.console
            if m.type in ("error", "warning") and not self._expected(m)
        ]
        return [
            *console,
            *(f"page error: {e}" for e in self.page_errors),
            *(f"CSP violation: {v}" for v in self.csp_violations),
            *(f"dialog: {d}" for d in self.dialogs),
        ]

    def clear(self) -> None:
        self.console.clear()
        self.page_errors.clear()
        self.csp_violations.clear()
        self.dialogs.clear()


def _on_dialog(watched: WatchedPage, dialog: Dialog) -> None:
    watched.dialogs.append(f"{dialog.type}: {dialog.message}")
    dialog.dismiss()


def open_watched_page(
    browser: Browser,
    *,
    viewport: dict[str, int] | None = None,
    color_scheme: ColorScheme = "light",
    reduced_motion: bool = False,
    touch: bool = False,
) -> WatchedPage:
    """A fresh context (no shared cache or storage) and page, watched from the first byte;
    ``touch``: a phone's touch screen, without mouse or keyboard (coarse pointer, no hover)."""
    options: dict[str, Any] = {
        "viewport": viewport or WIDE,
        "color_scheme": color_scheme,
        "reduced_motion": "reduce" if reduced_motion else "no-preference",
    }
    if touch:
        options.update(has_touch=True, is_mobile=True)
    context = browser.new_context(**options)
    page = context.new_page()
    watched = WatchedPage(context=context, page=page)
    # Playwright tags handlers with an attribute: they must be plain functions, not methods.
    context.expose_function(
        "__reportCspViolation", lambda text: watched.csp_violations.append(text)
    )
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    page.on("console", lambda message: watched.console.append(message))
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("dialog", lambda dialog: _on_dialog(watched, dialog))
    return watched
