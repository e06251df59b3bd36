"""``python -m bench.search``: how long ``GET /chat/search`` takes over 100,000 exchanges.

Fills a fresh store (SQLite in a temporary file; PostgreSQL on the tests' throwaway server
with ``fsync=on``) with 100,000 exchanges of one owner in 1,000 conversations, written through
the store itself (so SQLite's FTS5 triggers and PostgreSQL's keyed terms are made as in
service), lets PostgreSQL settle (``settle``), then times what the route does after
parsing: the query's words, the store's search and the snippets of the 20 best
(``Chat.search``), for queries of a common, a middling and a rare word and of two words,
each repeated. The text is words drawn with Zipf's law from
a vocabulary of 20,000 made-up words, as natural language uses words: a few in every
exchange, most seldom. It also times the deletion of one conversation (100 exchanges), which
on SQLite rewrites the search index (writer.py's ``ERASE_FROM_SEARCH_INDEX``), and two cuts:
a regeneration of a conversation's last reply and an edit of its 50th message, which erase
what they cut the same way (PostgreSQL's re-seal what is left: store/postgres_cut.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from chat_service.chat.domain import ConversationRef
from chat_service.chat.search import result, words_of
from chat_service.store import ChatStore
from chat_service.store.postgres import PostgresChatStore
from chat_service.store.sqlite import SQLiteChatStore

OWNER = "key:bench"
EXCHANGES = 100_000
CONVERSATIONS = 1_000
VOCABULARY = 20_000
USER_WORDS, AI_WORDS = 15, 40
LIMIT = 20
# Queries by the rank of their words in the vocabulary (1 = the most used).
QUERIES = {
    "common word (rank 5)": (5,),
    "middling word (rank 300)": (300,),
    "rare word (rank 10,000)": (10_000,),
    "two words (ranks 50, 2,000)": (50, 2_000),
}
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "di"]


def vocabulary(size: int) -> list[str]:
    """Distinct made-up words, the most used first."""
    made = random.Random(7)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(made.choice(_SYLLABLES) for _ in range(made.randint(2, 4)))] = None
    return list(words)


class Corpus:
    def __init__(self, seed: int = 20261205) -> None:
        self.words = vocabulary(VOCABULARY)
        weights = [1 / rank for rank in range(1, VOCABULARY + 1)]  # Zipf's law, s = 1
        self._cumulative = list(_accumulate(weights))
        self._random = random.Random(seed)

    def text(self, count: int) -> str:
        picks = self._random.choices(self.words, cum_weights=self._cumulative, k=count)
        return " ".join(picks).capitalize() + "."

    def query(self, ranks: Sequence[int]) -> str:
        return " ".join(self.words[rank - 1] for rank in ranks)


def _accumulate(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


async def fill(store: ChatStore, corpus: Corpus, exchanges: int) -> float:
    """Append ``exchanges`` through the store, 500 at a time (group commit batches them);
    the seconds it took."""
    started = time.perf_counter()
    for first in range(0, exchanges, 500):
        await asyncio.gather(
            *(
                store.append(
                    ConversationRef(OWNER, f"c{n % CONVERSATIONS}"),
                    corpus.text(USER_WORDS),
                    corpus.text(AI_WORDS),
                )
                for n in range(first, min(first + 500, exchanges))
            )
        )
    return time.perf_counter() - started


async def search_ms(store: ChatStore, query: str) -> tuple[float, int]:
    """One search as the route makes it (Chat.search): milliseconds, results."""
    started = time.perf_counter()
    words = words_of(query)
    hits = await store.search(OWNER, words, limit=LIMIT)
    results = [result(hit, words) for hit in hits]
    return (time.perf_counter() - started) * 1000, len(results)


async def measure(store: ChatStore, corpus: Corpus, exchanges: int, repeats: int) -> list[str]:
    lines = []
    every: list[float] = []
    for name, ranks in QUERIES.items():
        query = corpus.query(ranks)
        await search_ms(store, query)  # warm the caches
        timings = []
        found = 0
        for _ in range(repeats):
            ms, found = await search_ms(store, query)
            timings.append(ms)
        every += timings
        lines.append(f"| {name} | {found} | {_p(timings, 50):.1f} | {_p(timings, 95):.1f} |")
    lines.append(f"| all of them | | {_p(every, 50):.1f} | {_p(every, 95):.1f} |")
    started = time.perf_counter()
    assert await store.delete_conversation(ConversationRef(OWNER, "c0"))
    deleted_ms = (time.perf_counter() - started) * 1000
    each = exchanges // CONVERSATIONS
    lines.append(f"| deleting a conversation of {each} exchanges | | {deleted_ms:.0f} | |")
    # Cuts (regenerate, edit) erase as a deletion does: SQLite rewrites the index, PostgreSQL
    # seals what is left under a new key.
    for name, conversation, turn in (
        ("regenerating the last reply", "c1", each),
        (f"editing turn {each // 2} of {each}", "c2", each // 2),
    ):
        started = time.perf_counter()
        await store.append(
            ConversationRef(OWNER, conversation), "again", "anew", replaces_turn=turn
        )
        cut_ms = (time.perf_counter() - started) * 1000
        lines.append(f"| {name} | | {cut_ms:.0f} | |")
    return lines


def _p(timings: Sequence[float], percentile: int) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[percentile - 1]


async def run_sqlite(exchanges: int, repeats: int) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.db"
        store = await SQLiteChatStore.open(path)
        try:
            filled = await fill(store, Corpus(), exchanges)
            size = _size_mb(Path(folder))
            head = [f"SQLite: {exchanges:,} exchanges written in {filled:.0f} s, {size:.0f} MB"]
            return head + await measure(store, Corpus(), exchanges, repeats)
        finally:
            await store.close()


def _size_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.iterdir()) / 1e6


async def run_postgres(exchanges: int, repeats: int) -> list[str]:
    from tests.support.postgres import PostgresServer

    server = PostgresServer(fsync=True).start()
    try:
        store = await PostgresChatStore.open(server.url)
        try:
            filled = await fill(store, Corpus(), exchanges)
            await settle(server.url)
            head = [f"PostgreSQL: {exchanges:,} exchanges written in {filled:.0f} s"]
            return head + await measure(store, Corpus(), exchanges, repeats)
        finally:
            await store.close()
    finally:
        server.close()


async def settle(url: str) -> None:
    """Vacuum, analyse and checkpoint the filled database: what autovacuum and the
    checkpointer do to it on their own within about a minute of the writes (seen 52 s after
    the fill on this VM), and which otherwise happens in the middle of the timings, on the
    same two cores, as a pass over the 206 MB of exchanges (bench/README.md has the figures
    of a run without it)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--exchanges", type=int, default=EXCHANGES)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    for name in args.stores.split(","):
        run = run_sqlite if name == "sqlite" else run_postgres
        head, *rows = asyncio.run(run(args.exchanges, args.repeats))
        print(head)
        print(f"| query (limit {LIMIT}) | results | p50 ms | p95 ms |")
        print("|---|--:|--:|--:|")
        print("\n".join(rows))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
