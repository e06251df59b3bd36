"""axe-core's WCAG 2.2 AA rules, run in the page by the browser tests.

:func:`assert_accessible` checks a page as it stands: every e2e test's pages are checked when
the test ends (the ``open_page`` fixture), and ``test_accessibility.py`` checks each state of
the pages on purpose, in both colour schemes and at both widths. axe-core comes from npm (a dev
dependency in frontend/package.json): without ``npm ci`` in frontend/ the check skips with the
reason, and fails when ``CI`` is set.

The pages forbid inline and foreign scripts (``script-src 'self'``, Trusted Types), so axe is
not added as a ``<script>``: Playwright evaluates its source over the DevTools protocol, which
the page's policy does not govern. Running it touches nothing the page's watchers report (no
console message, no CSP violation): tests/e2e/test_accessibility.py checks that too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.nginx import FRONTEND_DIR, REPO
from tests.support.binaries import in_ci

AXE = FRONTEND_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2, levels A and AA: the rules axe tags with these.
WCAG_22_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")

# Transitions end first (a drawer sliding in), so axe measures what stays on screen; endless
# animations (the "thinking" dots) are not waited for, nor is one that outlasts two seconds.
_RUN_AXE = """async ({ include, tags }) => {
  const finite = document.getAnimations().filter(
    (animation) => animation.effect?.getComputedTiming().endTime !== Infinity,
  );
  await Promise.race([
    Promise.all(finite.map((animation) => animation.finished.catch(() => null))),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  // axe reads the stylesheets for its orientation rule (1.3.4). One that failed to load (the
  // API docs without Swagger UI) cannot be read: axe would fetch it again and parse it in a
  // <style> of its own, which the page's policy refuses. Then the rule goes without.
  const readable = [...document.styleSheets].every((sheet) => {
    try {
      return sheet.cssRules !== null;
    } catch {
      return false;
    }
  });
  const context = include ? { include } : document;
  const results = await window.axe.run(context, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations"],
    preload: readable,
  });
  return results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    helpUrl: violation.helpUrl,
    nodes: violation.nodes.map((node) => ({
      target: node.target,
      html: node.html,
      summary: node.failureSummary || "",
    })),
  }));
}"""


@dataclass(frozen=True)
class Offender:
    """One element that breaks a rule: axe's selector for it, its markup and what is wrong."""

    selector: str
    html: str
    summary: str


@dataclass(frozen=True)
class Violation:
    """One axe rule the page breaks, and where."""

    rule: str
    impact: str
    help: str
    help_url: str
    nodes: tuple[Offender, ...]

    def describe(self) -> str:
        lines = [f"- {self.rule} ({self.impact}): {self.help} <{self.help_url}>"]
        for node in self.nodes:
            lines.append(f"    {node.selector}")
            lines.append(f"      {node.html}")
            lines.extend(f"      {line.strip()}" for line in node.summary.splitlines() if line)
        return "\n".join(lines)


def axe_installed() -> bool:
    return AXE.is_file()


def require_axe() -> None:
    """Skip the calling test without axe-core (``npm ci`` in frontend/); fail it in CI."""
    if axe_installed():
        return
    reason = f"axe-core is not installed ({AXE.relative_to(REPO)}): run npm ci in frontend/"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _title(page: Path) -> str:
    found = re.search(r"<title>([^<]*)</title>", page.read_text(encoding="utf-8"))
    return found.group(1) if found else ""


# The titles of frontend/'s HTML pages: the chat page's, the API docs'.
PAGE_TITLES = frozenset(_title(page) for page in FRONTEND_DIR.glob("*.html")) - {""}


def shows_our_page(page: Page) -> bool:
    """Whether ``page`` holds one of frontend/'s pages (by its title), rather than a JSON
    document, a server's own error page or a test's page standing for another site."""
    page.wait_for_load_state()
    is_html = page.evaluate("document.contentType") == "text/html"
    return is_html and page.title() in PAGE_TITLES


@functools.cache
def _axe_source() -> str:
    # Playwright returns the value of the last statement it evaluates (and calls it, were it a
    # function): after axe's source, that is nothing.
    return AXE.read_text(encoding="utf-8") + "\n;undefined;"


def _selector(target: Any) -> str:
    """axe's target for an element: its selector, in a list (one per frame on the way to it),
    itself a list for an element in a shadow root (one per shadow host)."""
    if isinstance(target, list):
        return " >>> ".join(_selector(part) for part in target)
    return str(target)


def axe_violations(page: Page, *, include: str | Sequence[str] | None = None) -> list[Violation]:
    """What axe-core finds against WCAG 2.2 AA in ``page`` now: the whole document, or only
    the elements matched by ``include`` (a CSS selector, or several)."""
    require_axe()
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    selectors = [include] if isinstance(include, str) else include
    found: list[dict[str, Any]] = page.evaluate(
        _RUN_AXE,
        {"include": [[s] for s in selectors] if selectors else None, "tags": list(WCAG_22_AA)},
    )
    return [
        Violation(
            rule=v["id"],
            impact=v["impact"] or "unrated",
            help=v["help"],
            help_url=v["helpUrl"],
            nodes=tuple(
                Offender(_selector(n["target"]), n["html"], n["summary"]) for n in v["nodes"]
            ),
        )
        for v in found
    ]


def assert_accessible(
    page: Page, state: str, *, include: str | Sequence[str] | None = None
) -> None:
    """Fail with every violation axe-core finds in ``page`` (described as ``state``)."""
    violations = axe_violations(page, include=include)
    assert not violations, (
        f"axe-core: {len(violations)} WCAG 2.2 AA violation(s) in {state} ({page.url}):\n"
        + "\n".join(v.describe() for v in violations)
    )
