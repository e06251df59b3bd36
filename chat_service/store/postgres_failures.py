"""What a lost or failing PostgreSQL raises, for every module of the store that talks to it."""

from __future__ import annotations

import asyncpg

# What a lost or failing database raises from a query.
# (InternalClientError: a connection left mid-message by a cancelled call.)
FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
