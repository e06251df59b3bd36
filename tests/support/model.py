"""The OpenAI-compatible model server (tests/support/model_server.py) as a test fixture:
start it as a process, script its behaviour, read what it received."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.limits import LIMITS_OFF
from tests.support.service import free_port, wait_until_ok

STARTUP_TIMEOUT_S = 20.0


@dataclass
class ModelServer:
    """A running model server; ``base_url`` is what OPENAI_BASE_URL takes."""

    workdir: Path
    port: int = field(default_factory=free_port)
    # Command-line options beyond the port (--no-records, --uvloop: the benchmark's).
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] = field(init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> ModelServer:
        log = self.workdir / f"model-server-{self.port}.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.model_server",
                    "--port",
                    str(self.port),
                    *self.options,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until_ok(f"{self.url}/health", self.process, STARTUP_TIMEOUT_S)
        except RuntimeError as error:
            self.kill()
            raise RuntimeError(f"model server {error}:\n{log.read_text()}") from None
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def script(self, *behaviours: dict[str, Any]) -> None:
        """The next requests take these behaviours, one each, in order."""
        self._call("POST", "/_control/script", {"behaviours": list(behaviours)})

    def script_listings(self, *behaviours: dict[str, Any]) -> None:
        """The next ``GET /v1/models`` take these behaviours (``status``, ``body``)."""
        self._call("POST", "/_control/listing-script", {"behaviours": list(behaviours)})

    def default(self, **behaviour: Any) -> None:
        """What every request does once the script is used up."""
        self._call("POST", "/_control/default", behaviour)

    def reset(self) -> None:
        self._call("POST", "/_control/reset")

    def requests(self) -> list[dict[str, Any]]:
        """What the server received, oldest first, with what became of each."""
        records: list[dict[str, Any]] = self._call("GET", "/_control/requests")
        return records

    def listings(self) -> list[dict[str, Any]]:
        """The model lists asked for (``GET /v1/models``), oldest first: their headers."""
        records: list[dict[str, Any]] = self._call("GET", "/_control/listings")
        return records

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The records once at least ``count`` requests arrived."""
        deadline = time.monotonic() + timeout
        while len(records := self.requests()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(records)} model requests, expected {count}")
            time.sleep(0.02)
        return records

    def openai_env(self, **settings: str) -> dict[str, str]:
        """The service's environment for answering with this server."""
        return {
            "CHAT_ASSISTANT": "openai",
            "CHAT_MODEL": "gpt-test",
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": "sk-test-key-not-secret",
            **LIMITS_OFF,
            **settings,
        }
