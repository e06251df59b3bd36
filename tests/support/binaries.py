"""Finding the system programs some tests drive (nginx, chromium, promtool, ...).

A missing program skips the test locally, with the reason and the package to install,
and fails it when ``CI`` is set: CI installs everything in .ci/run, so a missing
binary there is a broken pipeline, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_binary(name: str, *, package: str | None = None, path: str | None = None) -> str:
    """Return the program's path, or skip (locally) / fail (in CI) the calling test."""
    found = path if path is not None and os.access(path, os.X_OK) else shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (Debian package {package or name}; .ci/run installs it)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_root(reason: str) -> None:
    """Skip (locally) / fail (in CI) a test that needs root, e.g. to mount a filesystem."""
    if os.geteuid() == 0:
        return
    message = f"needs root: {reason} (CI runs as root)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
