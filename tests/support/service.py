"""Start the real ``chat-service`` process on a free loopback port, for integration tests."""

from __future__ import annotations

import itertools
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 20.0


# Ports handed out by free_port: below Linux's ephemeral range (32768 and up, where the
# kernel picks clients' source ports), a block of its own for each pytest-xdist worker, so
# that two workers never hand out the same port, and neither does one worker twice. Each run
# starts at a random place in its blocks, so that two runs at once (a mutation run beside a
# test run) do not walk the same ports in step.
PORT_BASE = 20_000
PORTS_PER_WORKER = 1_500


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under xdist
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


_first_port = PORT_BASE + _worker_index() * PORTS_PER_WORKER
_start = secrets.randbelow(PORTS_PER_WORKER)
_next_ports: Iterator[int] = itertools.cycle(
    [
        *range(_first_port + _start, _first_port + PORTS_PER_WORKER),
        *range(_first_port, _first_port + _start),
    ]
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that no other test of
    this run is given (see PORT_BASE)."""
    for _ in range(PORTS_PER_WORKER):
        port = next(_next_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (by another program, or still in TIME_WAIT)
            return port
    raise RuntimeError(f"no free port in {_first_port}-{_first_port + PORTS_PER_WORKER - 1}")


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without CHAT_* and OTEL_* leaking in, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_until_ok(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers 200; RuntimeError if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not ready after {timeout}s")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chat_service", *args]


@dataclass
class ServiceProcess:
    """A running chat-service; its stdout and stderr are collected in files."""

    port: int
    db_path: Path
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] = field(init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"service-{self.port}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"service-{self.port}.stderr"

    def start(
        self,
        *,
        ready_path: str = "/readyz",
        user: str | None = None,
        file_limit: tuple[int, int] | None = None,
    ) -> ServiceProcess:
        """Start the process and wait until ``ready_path`` answers 200 (``user``: run as;
        ``file_limit``: its RLIMIT_NOFILE, soft and hard, as a system would set them)."""

        def limit_files() -> None:
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, file_limit)

        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                command("--port", str(self.port), "--db", str(self.db_path)),
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                user=user,
                preexec_fn=limit_files if file_limit is not None else None,
            )
        self.wait_ready(path=ready_path)
        return self

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S, path: str = "/readyz") -> None:
        try:
            wait_until_ok(f"{self.base_url}{path}", self.process, timeout)
        except RuntimeError as error:
            self.kill()
            raise RuntimeError(f"chat-service {error}:\n{self.stderr()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """A blocking HTTP call: (status, headers, body), the body decoded when it is JSON."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, raw, hdrs = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, hdrs = error.code, error.read(), error.headers
        if hdrs.get_content_type() == "application/json":
            return status, dict(hdrs.items()), json.loads(raw) if raw else None
        return status, dict(hdrs.items()), raw.decode("utf-8", "replace")
