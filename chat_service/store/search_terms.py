"""The words a text is searched by, and their keyed form for the PostgreSQL store.

One notion of a word for both stores and for the snippets built from their results: a run of
letters and digits (the underscore and punctuation separate words; combining accents belong
to the word they mark), compared without case and without diacritics (``Café`` is ``cafe``).
SQLite's FTS5 tokenizer (``unicode61 remove_diacritics 2``) splits and folds text the same
way for the scripts written with spaces, so a query's words, quoted one by one, are found by
FTS5 exactly as :func:`words` would find them.

PostgreSQL never holds a word in the clear (sealing.py): an exchange is indexed by
:func:`keyed_terms`, the first 8 bytes of an HMAC-SHA256 of each distinct word, keyed by a
search key derived from the conversation's own key. Deleting the conversation shreds that key,
so the terms left in dead rows, the WAL or backups can no longer be tested against a
dictionary: they are random numbers to anyone, the service included.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence

from chat_service.chat.domain import SearchHit

# A word: a letter or digit, then letters, digits and combining diacritical marks (a text in
# decomposed form, NFD, writes é as e and U+0301).
WORD = re.compile(r"[^\W_]+(?:[\u0300-\u036f]+[^\W_]*)*")
# The same for ASCII text once in lower case (five times quicker).
_ASCII_WORD = re.compile(r"[a-z0-9]+")
# How many matches a search ranks: the newest this many of the owner's. Ranking every match
# would cost as many as a word has (bench/README.md: a word in most of 100,000 exchanges took
# SQLite's bm25() 160-530 ms); the newest are what a reader looks for first.
CANDIDATES = 200
# BM25's constants (those of SQLite's bm25() and most engines): how fast repeats of a word
# stop adding to a score, and how much a long exchange is discounted.
K1 = 1.2
B = 0.75
# How the search key is derived from a conversation's key: the AES key seals text, this
# one keys the index, and neither use can say anything about the other.
_SEARCH_KEY_LABEL = b"chat-service search terms v1"


def fold(word: str) -> str:
    """A word as it is compared: lower case, without diacritics."""
    if word.isascii():  # most words: nothing to decompose (and 10 times faster)
        return word.lower()
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


def spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Each word of ``text``: where it starts and ends, and its folded form."""
    if text.isascii():  # lower case keeps an ASCII text's length, so the places hold
        for match in _ASCII_WORD.finditer(text.lower()):
            yield match.start(), match.end(), match.group()
        return
    for match in WORD.finditer(text):
        yield match.start(), match.end(), fold(match.group())


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order, repeats included."""
    return [folded for _, _, folded in spans(text)]


def query_words(text: str, *, most: int) -> list[str]:
    """The distinct words of a query, in the order typed, at most ``most`` of them."""
    return list(dict.fromkeys(words(text)))[:most]


def search_key(conversation_key: bytes) -> bytes:
    """The key of a conversation's search terms, derived from its sealing key."""
    return hmac.digest(conversation_key, _SEARCH_KEY_LABEL, "sha256")


def keyed_term(key: bytes, word: str) -> int:
    """A folded word as the index holds it: a signed 64-bit number (PostgreSQL's bigint)."""
    return int.from_bytes(hmac.digest(key, word.encode(), "sha256")[:8], "big", signed=True)


def keyed_terms(key: bytes, texts: Iterable[str]) -> list[int]:
    """The distinct words of ``texts`` as the index holds them, sorted."""
    distinct = {word for text in texts for word in words(text)}
    return sorted(keyed_term(key, word) for word in distinct)


def _tokens(text: str) -> list[str]:
    """:func:`words`, quicker for ASCII text (a search reads the words of 200 exchanges)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return words(text)


def bm25(counts: Mapping[str, int], length: int, average: float, query: Sequence[str]) -> float:
    """BM25's weight of an exchange of ``length`` words, holding the words of ``counts``, for
    the ``query`` (without the words' rarity: see :func:`rank`)."""
    norm = K1 * (1 - B + B * length / average) if average else K1
    return sum(counts[w] * (K1 + 1) / (counts[w] + norm) for w in query)


def rank(hits: Sequence[SearchHit], query: Sequence[str]) -> list[SearchHit]:
    """``hits`` best first, by BM25's weighing of how often each of the ``query``'s words
    occurs in an exchange against its length (the average taken over ``hits``), the newest
    first among equals. Every hit holds every word, so the words' rarity (BM25's other
    factor) would weigh all of them alike and is left out."""
    # The message and the reply as one text (a line break keeps their words apart); only the
    # query's words are counted, and the length.
    tokens = [_tokens(f"{hit.exchange.user}\n{hit.exchange.ai}") for hit in hits]
    counted = [{word: found.count(word) for word in query} for found in tokens]
    lengths = [len(found) for found in tokens]
    average = sum(lengths) / len(lengths) if hits else 0.0

    scored = [
        (bm25(counts, length, average, query), hit)
        for counts, length, hit in zip(counted, lengths, hits, strict=True)
    ]
    scored.sort(key=lambda pair: (-pair[0], -pair[1].exchange.id))
    return [hit for _, hit in scored]
