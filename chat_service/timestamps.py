"""RFC 3339 UTC timestamps with milliseconds (``2026-11-24T10:00:00.123Z``), cheaply.

Every request stores one and logs one, so the text up to the second is formatted once per
second and reused (``datetime.isoformat`` cost a few microseconds each time).
"""

from __future__ import annotations

import time


class Timestamps:
    """Formats epoch seconds; safe to share between threads."""

    def __init__(self) -> None:
        # (second, its text), swapped as one reference so that threads never mix the two.
        self._cached = (-1, "")

    def format(self, created: float) -> str:
        # As datetime does: round to the microsecond, then cut to the millisecond (so
        # 0.001 is .001, not the .000 that float error would make of it).
        second, micros = divmod(round(created * 1_000_000), 1_000_000)
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        return f"{cached[1]}.{micros // 1000:03d}Z"


# One for the process: the store's rows and every log line share its cached second.
rfc3339 = Timestamps().format


def utc_now() -> str:
    """Now, e.g. ``2026-11-24T10:00:00.123Z``."""
    return rfc3339(time.time())
