"""Sustained POST load from threads, recording exactly which messages were acknowledged."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class ClientRecord:
    acked: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # The first few bodies of answers other than 200, to check their shape.
    error_bodies: list[bytes] = field(default_factory=list)


class PostLoad:
    """``clients`` threads, each posting numbered messages one after another on a keep-alive
    connection, until stopped or the server goes away. Bounded by ``max_per_client``.

    ``port`` may be several (replicas): client ``i`` posts to the ``i``-th, round-robin.
    """

    def __init__(
        self,
        port: int | Sequence[int],
        *,
        clients: int = 8,
        prefix: str = "m",
        max_per_client: int = 5000,
        max_errors: int = 50,
    ):
        self.ports = [port] if isinstance(port, int) else list(port)
        self._max_errors = max_errors
        self.prefix = prefix
        self.records = [ClientRecord() for _ in range(clients)]
        self._max = max_per_client
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> PostLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def acked_count(self) -> int:
        return sum(len(record.acked) for record in self.records)

    def non_200_responses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for record in self.records:
            for status, n in record.statuses.items():
                if status != 200:
                    counts[status] = counts.get(status, 0) + n
        return counts

    def _run(self, client: int) -> None:
        record = self.records[client]
        port = self.ports[client % len(self.ports)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for seq in range(self._max):
            if self._stop.is_set():
                break
            text = f"{self.prefix}-c{client}-{seq}"
            try:
                conn.request(
                    "POST",
                    "/chat/message",
                    body=json.dumps({"message": text}),
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                # Refused, reset or cut off: never acknowledged. Try a new connection; once the
                # server is gone, every attempt fails fast and the loop runs out or is stopped.
                record.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if record.errors > self._max_errors:
                    break
                continue
            record.statuses[response.status] = record.statuses.get(response.status, 0) + 1
            if response.status == 200:
                record.acked.append(text)
            elif len(record.error_bodies) < 5:
                record.error_bodies.append(body)
        conn.close()
