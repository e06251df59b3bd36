"""Store faults on real files: disk full, a read-only database, a corrupted file.

In each, requests that need the broken part get the contract's 500 bodies, /readyz says
503, the process keeps serving, and it recovers by itself once the fault is removed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StartService
from tests.support.binaries import require_binary, require_root
from tests.support.service import ServiceProcess

POST_FAILED = {"status": "error", "message": "Failed to store the message."}
HISTORY_FAILED = {"message": "Failed to fetch chat history."}
NOT_READY = {"status": "error", "message": "The store is not available."}


def wait_for_status(service: ServiceProcess, path: str, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while service.request("GET", path)[0] != status:
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        time.sleep(0.1)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs) that can be filled up."""
    require_root("mounts a small tmpfs to fill it")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_disk_full(start_service: StartService, small_disk: Path) -> None:
    service = start_service(db_path=small_disk / "chat.db")
    assert service.request("POST", "/chat/message", {"message": "before"})[0] == 200

    filler = fill(small_disk)
    status, _, body = service.request("POST", "/chat/message", {"message": "lost?"})
    assert (status, body) == (500, POST_FAILED)
    assert service.request("GET", "/readyz")[::2] == (503, NOT_READY)
    assert service.request("GET", "/healthz")[0] == 200, "the process keeps running"
    status, _, history = service.request("GET", "/chat/history")
    assert (status, [item["user"] for item in history]) == (200, ["before"]), "reads still work"

    filler.unlink()
    wait_for_status(service, "/readyz", 200)
    assert service.request("POST", "/chat/message", {"message": "after"})[0] == 200
    _, _, history = service.request("GET", "/chat/history")
    assert [item["user"] for item in history] == ["before", "after"]


def make_read_only(path: Path, read_only: bool) -> None:
    """Root ignores permission bits, so as root the file is made immutable (chattr +i)."""
    if os.geteuid() == 0:
        chattr = require_binary("chattr", package="e2fsprogs")
        subprocess.run([chattr, "+i" if read_only else "-i", str(path)], check=True)
    else:
        path.chmod(0o444 if read_only else 0o644)


def test_read_only_database(start_service: StartService, tmp_path: Path) -> None:
    db_path = tmp_path / "chat.db"
    first = start_service(db_path=db_path)
    assert first.request("POST", "/chat/message", {"message": "before"})[0] == 200
    assert first.stop() == 0  # a clean stop checkpoints and removes the -wal file

    make_read_only(db_path, True)
    try:
        service = start_service(db_path=db_path, ready_path="/healthz")
        status, _, body = service.request("POST", "/chat/message", {"message": "refused"})
        assert (status, body) == (500, POST_FAILED)
        assert service.request("GET", "/readyz")[::2] == (503, NOT_READY)
        status, _, history = service.request("GET", "/chat/history")
        assert (status, [item["user"] for item in history]) == (200, ["before"])
    finally:
        make_read_only(db_path, False)
    wait_for_status(service, "/readyz", 200)
    assert service.request("POST", "/chat/message", {"message": "after"})[0] == 200
    _, _, history = service.request("GET", "/chat/history")
    assert [item["user"] for item in history] == ["before", "after"]


def seed(db_path: Path, rows: int) -> None:
    """Enough history that it cannot all sit in SQLite's page cache (2 MiB by default)."""
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at)"
            " VALUES ('default', ?, ?, ?, '2026-01-01T00:00:00.000Z')",
            [
                (i + 1, f"seeded message {i} " + "x" * 200, "reply " + "y" * 200)
                for i in range(rows)
            ],
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_corrupted_file(start_service: StartService, tmp_path: Path) -> None:
    db_path = tmp_path / "chat.db"
    first = start_service(db_path=db_path)  # creates the schema
    assert first.stop() == 0
    seed(db_path, rows=20_000)
    service = start_service(db_path=db_path)
    assert service.request("GET", "/chat/history?limit=1")[0] == 200

    # Overwrite a stretch of pages in the middle of the table with garbage, as a failing
    # disk would, keeping the original bytes to put back.
    size = db_path.stat().st_size
    offset, length = size // 3, 256 * 1024
    with db_path.open("r+b") as file:
        file.seek(offset)
        original = file.read(length)
        file.seek(offset)
        file.write(os.urandom(length))
        file.flush()
        os.fsync(file.fileno())

    status, _, body = service.request("GET", "/chat/history")
    assert (status, body) == (500, HISTORY_FAILED)
    assert service.request("GET", "/readyz")[::2] == (503, NOT_READY)
    assert service.request("GET", "/healthz")[0] == 200

    with db_path.open("r+b") as file:
        file.seek(offset)
        file.write(original)
        file.flush()
        os.fsync(file.fileno())
    wait_for_status(service, "/readyz", 200)
    status, _, history = service.request("GET", "/chat/history")
    assert status == 200
    assert len(history) == 20_000
    assert service.request("POST", "/chat/message", {"message": "after"})[0] == 200
