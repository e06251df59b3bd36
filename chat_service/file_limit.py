"""The process's file-descriptor limit, raised to what the system allows.

Every connection, stream and subscription holds a descriptor. Many systems start processes
with a soft limit of 1,024 (or less) under a hard limit many times that, and a service that
runs out cannot accept even a health probe. The soft limit may be raised to the hard one
without privileges, so start-up does, and logs both; the per-caller and per-address stream
caps (api/stream_limits.py) then keep any one caller to a small share of it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Where an unlimited hard limit leaves the soft one: Linux's default ceiling (fs.nr_open).
UNLIMITED_TARGET = 1_048_576


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # a ceiling below the hard limit (nr_open)
            log.warning(
                "could not raise the open-file limit: %s", exc, extra={"soft": soft, "hard": hard}
            )
            return soft
        log.info("open-file limit raised", extra={"from": soft, "to": target, "hard": hard})
        return target
    log.info("open-file limit", extra={"soft": soft, "hard": hard})
    # An unlimited soft limit (not on Linux, whose ceiling is fs.nr_open): no bound to keep.
    return UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else soft
