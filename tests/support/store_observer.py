"""A store observer for tests: counts what the store reports to its metrics."""

from __future__ import annotations


class CountingObserver:
    """Counts the store's reads (each SELECT, version reads included) and its commits."""

    def __init__(self) -> None:
        self.reads = 0
        self.commits: list[int] = []
        self.failed: list[int] = []

    def store_read(self, operation: str, seconds: float) -> None:
        assert operation == "SELECT"
        assert seconds >= 0
        self.reads += 1

    def store_committed(self, batch_size: int, seconds: float) -> None:
        self.commits.append(batch_size)

    def store_commit_failed(self, batch_size: int) -> None:
        self.failed.append(batch_size)
