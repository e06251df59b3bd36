"""``python -m bench.key_rewrite``: how long the PostgreSQL store's key-table rewrite pauses it.

Deleting a conversation on PostgreSQL ends with ``VACUUM FULL conversation_keys``
(chat_service/store/postgres_shredding.py), which holds the table's lock, and so every read
and commit of the store, while it rewrites. This fills the key table of a fresh database
(the tests' throwaway server, ``fsync=on``) with as many conversations as asked, as the store
makes them (a key per conversation, an id like an API key's conversation), and times the
rewrite a few times at each size: the pause the README's ``CHAT_DATABASE_SHRED_INTERVAL_S``
row quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence

import asyncpg

from chat_service.store.postgres import PostgresChatStore
from tests.support.postgres import PostgresServer

SIZES = (10_000, 100_000, 1_000_000)


async def measure(sizes: Sequence[int], repeats: int) -> list[tuple[int, str, list[float]]]:
    server = PostgresServer(fsync=True).start()
    try:
        store = await PostgresChatStore.open(server.url)  # the real schema, migrated
        await store.close()
        conn = await asyncpg.connect(server.url)
        try:
            results = []
            filled = 0
            for size in sizes:
                # Ids as the store writes them (owner/conversation), 32-byte keys.
                await conn.execute(
                    "INSERT INTO conversation_keys (conversation_id, key) "
                    "SELECT 'key:' || md5(g::text) || '/' || md5((-g)::text), "
                    "decode(md5(g::text) || md5((g + 1)::text), 'hex') "
                    "FROM generate_series($1::int, $2::int) AS g",
                    filled,
                    size - 1,
                )
                filled = size
                on_disk = await conn.fetchval(
                    "SELECT pg_size_pretty(pg_total_relation_size('conversation_keys'))"
                )
                timings = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    await conn.execute("VACUUM FULL conversation_keys")
                    timings.append((time.perf_counter() - started) * 1000)
                results.append((size, on_disk, timings))
            return results
        finally:
            await conn.close()
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.key_rewrite", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in SIZES),
        help="conversations in the key table, comma-separated (default %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print("| conversations | key table | rewrite, median of", args.repeats, "| each |")
    print("|--:|--:|--:|---|")
    for size, on_disk, timings in asyncio.run(measure(sizes, args.repeats)):
        each = ", ".join(f"{ms:.0f}" for ms in timings)
        print(f"| {size:,} | {on_disk} | {statistics.median(timings):.0f} ms | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
