"""A throwaway PostgreSQL server for tests: ``initdb`` into a temporary directory, ``postgres``
on a free loopback port, and a fresh database per test.

The PostgreSQL store is tested against the real server, not a stand-in, as DESIGN.md asks: its
SQL dialect, locking and crash recovery are what the store has to get right. Nothing here
depends on a cluster the system's package may have created and started (Debian's postinst
does): the server is our own, owned by the test session, and removed with it.

PostgreSQL refuses to run as root, and CI runs as root, so as root the server runs as an
unprivileged account (``nobody``, or a ``chat-test`` system user created for it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.support.service import free_port

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 30.0
SUPERUSER = "chat"
DEFAULT_DATABASE = "chat"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
# Tried in order when running as root; the last is created when none exists.
UNPRIVILEGED_ACCOUNTS = ("nobody", "chat-test")
# Lower-case, so that the unquoted name in hand-written SQL means the same database.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresNotFound(RuntimeError):
    """The PostgreSQL server programs are not installed: the caller decides to skip or fail."""


@dataclass(frozen=True)
class PostgresPrograms:
    """The programs of one installation: ``initdb`` and ``postgres`` must match in version
    (a data directory belongs to one major version), the client ``psql`` need not."""

    initdb: Path
    postgres: Path
    psql: Path

    @classmethod
    def find(cls, debian_root: Path = DEBIAN_ROOT) -> PostgresPrograms:
        """``initdb`` on PATH first (through its symlinks, to find its siblings), then Debian's
        newest ``/usr/lib/postgresql/<version>/bin``, which the package does not put on PATH."""
        candidates: list[Path] = []
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
        versions = [d for d in _subdirectories(debian_root) if _version_key(d.name)]
        newest_first = sorted(versions, key=lambda d: _version_key(d.name), reverse=True)
        candidates.extend(d / "bin" for d in newest_first)
        for bin_dir in candidates:
            initdb, postgres = bin_dir / "initdb", bin_dir / "postgres"
            psql = bin_dir / "psql" if _executable(bin_dir / "psql") else _which("psql")
            if _executable(initdb) and _executable(postgres) and psql is not None:
                return cls(initdb=initdb, postgres=postgres, psql=psql)
        raise PostgresNotFound(
            "PostgreSQL is not installed: initdb, postgres and psql neither on PATH nor in "
            f"{debian_root}/<version>/bin (Debian package postgresql; .ci/run installs it)"
        )


def _subdirectories(path: Path) -> list[Path]:
    return [d for d in path.iterdir() if d.is_dir()] if path.is_dir() else []


def _version_key(name: str) -> tuple[int, ...]:
    """``"9.6"`` < ``"15"`` < ``"16"``; empty for names that are not versions."""
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return ()
    return tuple(int(part) for part in name.split("."))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def unprivileged_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None when we are not): PostgreSQL
    refuses root, to keep a compromised server from owning the machine."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_ACCOUNTS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    created = UNPRIVILEGED_ACCOUNTS[-1]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", created],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(created)


def database_name(test_name: str, number: int) -> str:
    """A valid, unique database name that still says which test made it, for reading the log."""
    words = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"t{number}_{words}"[:63].rstrip("_")


def client_env() -> dict[str, str]:
    """Our environment without PG* variables, which would redirect psql or the server
    (PGHOST, PGDATABASE, PGOPTIONS, ...) to somewhere other than what the command line says."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    """One PostgreSQL server in its own temporary directory, on a loopback port that stays the
    same across :meth:`stop`/:meth:`kill` and :meth:`start`, as a restarted database would.

    The superuser ``chat`` connects without a password (``--auth=trust``): the server listens
    on 127.0.0.1 only, and lives as long as the test session. :meth:`close` removes it all.
    """

    def __init__(
        self,
        programs: PostgresPrograms | None = None,
        *,
        base_dir: Path | None = None,
        port: int | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        fsync: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """``base_dir`` must be reachable by the unprivileged account when we are root (the
        system temporary directory is; pytest's per-user ``tmp_path`` is not). ``settings``:
        more server parameters (``-c name=value``)."""
        self.programs = programs or PostgresPrograms.find()
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.account = unprivileged_account()
        self.root = Path(tempfile.mkdtemp(prefix="chat-test-postgres-", dir=base_dir))
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None
        self._has_default_database = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def log_path(self) -> Path:
        """The server's stderr, across restarts: what to read when a test puzzles."""
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        """The ``chat`` database, created at the first start (asyncpg and libpq take it)."""
        return self.url_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._process.pid if self._process is not None and self.running else None

    def start(self) -> PostgresServer:
        """Start the server (running ``initdb`` the first time) and wait until it accepts
        connections; after :meth:`kill`, that includes crash recovery. Does nothing when the
        server runs, so a fixture can undo a test's stop or kill without asking."""
        if self.running:
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.programs.postgres),
                    *("-D", str(self.data_dir)),
                    *("-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.socket_dir)),
                    # A test server's data need only survive the server, not the machine: a
                    # SIGKILL leaves what was written in the kernel's page cache, so kill()
                    # tests still see every commit. synchronous_commit stays at its default.
                    # (The benchmark turns fsync on: it measures durable commits.)
                    *("-c", f"fsync={'on' if self.fsync else 'off'}"),
                    *(
                        arg
                        for name, value in self.settings.items()
                        for arg in ("-c", f"{name}={value}")
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env=client_env(),
                # Its own process group, so that kill() takes every backend down with it.
                start_new_session=True,
                user=self._uid,
                group=self._gid,
                extra_groups=self._extra_groups,
            )
        self._wait_ready()
        if not self._has_default_database:
            self.create_database(DEFAULT_DATABASE)
            self._has_default_database = True
        return self

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Fast shutdown (SIGINT, what ``pg_ctl stop -m fast`` sends): sessions are ended and
        a checkpoint is written, so the next start needs no recovery. Killed after ``timeout``."""
        if self._process is None or not self.running:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once, like the OOM killer or a
        ``docker kill``: no checkpoint, so the next :meth:`start` runs crash recovery. Backends
        outlive a postmaster killed alone until they notice, still attached to its shared
        memory, and a start refuses to run beside them: so the whole group goes, and is waited
        for."""
        if self._process is None or not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._wait_group_gone(self._process.pid)

    def close(self) -> None:
        """Stop the server and remove its directory, data and log."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database (a copy of ``template1``: tens of milliseconds); returns its URL."""
        self._check_name(name)
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop it even while a test still holds connections to it (they are terminated)."""
        self._check_name(name)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with ``psql`` (no event loop needed, so session fixtures can use it) and
        return its unaligned output; RuntimeError with psql's message when it fails."""
        result = self._psql(sql, database, connect_timeout=5)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def files_contain(self, needle: bytes) -> list[str]:
        """The files of the data directory (tables, WAL, everything) that hold ``needle``,
        relative to it: what someone with a copy of the directory could read. A WAL record
        that crosses a WAL page is split by the next page's header, so WAL segments are
        also searched with their page headers taken out."""
        found = []
        for path in sorted(self.data_dir.rglob("*")):
            with contextlib.suppress(FileNotFoundError):  # a file the server just removed
                if not path.is_file():
                    continue
                content = path.read_bytes()
                if needle in content or (
                    path.parent.name == "pg_wal"
                    and WAL_SEGMENT.fullmatch(path.name)
                    and needle in wal_records(content)
                ):
                    found.append(str(path.relative_to(self.data_dir)))
        return found

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _psql(
        self, sql: str, database: str, *, connect_timeout: int
    ) -> subprocess.CompletedProcess[str]:
        conninfo = (
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} "
            f"connect_timeout={connect_timeout}"
        )
        return subprocess.run(
            [
                str(self.programs.psql),
                # No ~/.psqlrc; bare rows out; stop at the first error.
                *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-d", conninfo, "-c", sql),
            ],
            capture_output=True,
            text=True,
            env=client_env(),
            stdin=subprocess.DEVNULL,
            timeout=connect_timeout + 60,
            check=False,
        )

    def _initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.programs.initdb),
                *("-D", str(self.data_dir)),
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                # C.UTF-8: byte-order collation (the same on every machine) with UTF-8 character
                # classes, so lower() and ILIKE work on non-ASCII text.
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=client_env(),
            stdin=subprocess.DEVNULL,
            timeout=self.startup_timeout,
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _wait_ready(self) -> None:
        """Poll with a real connection and query (what a test does next) until it answers,
        the server exits, or time runs out; the error carries the log's tail."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail_start(f"exited with {self._process.returncode} while starting")
            result = self._psql("SELECT 1", "postgres", connect_timeout=2)
            if result.returncode == 0:
                return
            last_error = result.stderr.strip()
            time.sleep(0.05)
        self.kill()
        self._fail_start(f"not ready after {self.startup_timeout} s (last: {last_error})")

    def _fail_start(self, reason: str) -> NoReturn:
        raise RuntimeError(
            f"PostgreSQL on 127.0.0.1:{self.port} {reason}; {self.log_path} ends:\n"
            + self.log_tail()
        )

    def _wait_group_gone(self, group: int, timeout: float = 5.0) -> None:
        """Wait until no live process of the killed group remains (zombies that an absent
        init never reaps hold no shared memory, so they do not count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _live_members(group):
            time.sleep(0.01)

    # Popen's arguments to run as the unprivileged account when we are root (None: as we are).
    @property
    def _uid(self) -> int | None:
        return self.account.pw_uid if self.account else None

    @property
    def _gid(self) -> int | None:
        return self.account.pw_gid if self.account else None

    @property
    def _extra_groups(self) -> list[int] | None:
        """None of root's supplementary groups (disk, ...) may follow the server."""
        return [] if self.account else None

    @staticmethod
    def _check_name(name: str) -> None:
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")


# A WAL segment's name: timeline, log and segment numbers, 8 hexadecimal digits each.
WAL_SEGMENT = re.compile("[0-9A-F]{24}")
WAL_PAGE_BYTES = 8192  # XLOG_BLCKSZ, PostgreSQL's default (Debian's build keeps it)
_XLP_LONG_HEADER = 0x0002
# XLogPageHeaderData and XLogLongPageHeaderData, MAXALIGNed on 64-bit machines.
_SHORT_PAGE_HEADER, _LONG_PAGE_HEADER = 24, 40


def wal_records(segment: bytes) -> bytes:
    """A WAL segment's pages without their headers: the record stream as it was written,
    where a record that crossed a page boundary is whole again. Pages never written (zeros)
    are skipped."""
    stream = bytearray()
    for start in range(0, len(segment), WAL_PAGE_BYTES):
        page = segment[start : start + WAL_PAGE_BYTES]
        magic, info = int.from_bytes(page[0:2], "little"), int.from_bytes(page[2:4], "little")
        if magic == 0:
            continue
        header = _LONG_PAGE_HEADER if info & _XLP_LONG_HEADER else _SHORT_PAGE_HEADER
        stream += page[header:]
    return bytes(stream)


def _live_members(group: int) -> bool:
    """Whether a process of ``group`` still runs (Linux: read from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name, in parentheses, may hold spaces: split after its last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:
                return True
    return False
