"""Where the figures were measured: machine, versions, commit. Figures mean little without."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.wrk import wrk_version

PACKAGES = (
    "aiohttp",
    "aiosqlite",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "prometheus-client",
    "python-json-logger",
    "orjson",
    "uvloop",
)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _virtualized() -> bool | None:
    """A VM's vCPUs may share physical cores with other guests: expect more noise."""
    try:
        return " hypervisor" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _run(argv: list[str], cwd: Path) -> str | None:
    try:
        completed = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def filesystem_type(path: Path) -> str | None:
    """The database's filesystem: on tmpfs an fsync is free and durability costs nothing.

    findmnt reads the mount table (``ext4``); ``stat -f`` only knows the superblock's magic
    number, which ext2, ext3 and ext4 share, and is the fallback.
    """
    return _run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], path) or _run(
        ["stat", "-f", "-c", "%T", str(path)], path
    )


def describe(repo: Path) -> dict[str, Any]:
    commit = _run(["git", "rev-parse", "HEAD"], repo)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return {
        "machine": {
            "cpu_model": _cpu_model(),
            "cpus": os.cpu_count(),
            "usable_cpus": sorted(os.sched_getaffinity(0)),
            "memory_mb": _memory_mb(),
            "virtualized": _virtualized(),
            "kernel": platform.release(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "wrk": wrk_version(),
            **{name: _version(name) for name in PACKAGES},
        },
        "git": {"commit": commit, "dirty": bool(dirty) if dirty is not None else None},
    }
