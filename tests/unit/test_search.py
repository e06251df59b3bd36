"""``GET /chat/search``: the query's words, the snippets, and the route on both stores.

What the stores find and how they rank it is the store contract's (test_store_contract.py);
isolation between principals is the matrix's (tests/security/test_isolation.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import MultiDict

from chat_service.api.errors import ApiError
from chat_service.api.validation import SearchQuery, parse_search_query
from chat_service.chat.domain import Exchange, SearchHit
from chat_service.chat.search import (
    AI,
    ELLIPSIS,
    MAX_QUERY_WORDS,
    USER,
    Part,
    result,
    result_body,
    snippet,
    words_of,
)
from chat_service.config import Settings
from chat_service.store.search_terms import (
    bm25,
    fold,
    keyed_term,
    keyed_terms,
    query_words,
    rank,
    search_key,
    spans,
    words,
)
from tests.support.openapi import validate_response
from tests.support.refs import ref
from tests.support.store_faults import break_table
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]


# -- words ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("Café CAFE cafe\u0301", ["cafe", "cafe", "cafe"]),  # composed, upper, decomposed
        ("Über straße", ["uber", "straße"]),
        ("snake_case and-dash 3.14", ["snake", "case", "and", "dash", "3", "14"]),
        ('"NEAR(a b)" OR c* -x ^y col:z', ["near", "a", "b", "or", "c", "x", "y", "col", "z"]),
        ("日本語 テスト", ["日本語", "テスト"]),
        ("  \t\n ", []),
        ("\u0301 x", ["x"]),  # a mark on nothing is no word
        ("x", ["x"]),
    ],
)
def test_words_are_runs_of_letters_and_digits_folded(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_spans_say_where_each_word_is_in_the_text() -> None:
    assert list(spans("Ab, cé!")) == [(0, 2, "ab"), (4, 6, "ce")]


def test_fold_takes_case_and_accents_only() -> None:
    assert fold("ÀÉÎõü") == "aeiou"
    assert fold("ﬁ") == "ﬁ", "as SQLite's tokenizer leaves ligatures"


def test_query_words_are_distinct_in_the_order_typed_and_bounded() -> None:
    assert query_words("b a B c a", most=16) == ["b", "a", "c"]
    assert query_words("a b c d", most=2) == ["a", "b"]
    typed = " ".join(f"w{n}" for n in range(40))
    assert words_of(typed) == [f"w{n}" for n in range(MAX_QUERY_WORDS)]


def test_keyed_terms_depend_on_the_key_and_the_word_only() -> None:
    one, two = search_key(b"\x01" * 32), search_key(b"\x02" * 32)
    assert len(one) == 32
    assert one != two
    assert search_key(b"\x01" * 32) == one
    term = keyed_term(one, "word")
    assert -(2**63) <= term < 2**63
    assert keyed_term(one, "word") == term
    assert keyed_term(two, "word") != term
    assert keyed_term(one, "other") != term
    assert keyed_terms(one, ["Word word", "other WORD"]) == sorted([term, keyed_term(one, "other")])
    assert keyed_terms(one, ["", "!"]) == []


def test_keyed_terms_are_signed_64_bit_numbers_of_the_hmacs_start() -> None:
    """The first 8 bytes, big-endian and signed: PostgreSQL's bigint."""
    import hmac

    key = search_key(b"\x07" * 32)
    digest = hmac.digest(key, "wörd".encode(), "sha256")
    assert keyed_term(key, "wörd") == int.from_bytes(digest[:8], "big", signed=True)
    assert search_key(b"\x07" * 32) == hmac.digest(
        b"\x07" * 32, b"chat-service search terms v1", "sha256"
    )


def hit(exchange_id: int, user: str, ai: str = "", title: str | None = "T") -> SearchHit:
    exchange = Exchange(exchange_id, ref("c"), exchange_id, user, ai, "2026-01-01T00:00:00.000Z")
    return SearchHit(exchange, title)


def test_rank_puts_the_densest_first_then_the_newest() -> None:
    long = hit(1, "fox " + "filler " * 20)
    dense = hit(2, "fox fox", "fox")
    tie_old, tie_new = hit(3, "fox and hound"), hit(4, "fox and hound")
    ranked = rank([long, dense, tie_old, tie_new], ["fox"])
    assert [h.exchange.id for h in ranked] == [2, 4, 3, 1]
    assert rank([], ["fox"]) == []


def test_bm25_weighs_repeats_against_length() -> None:
    assert bm25(Counter({"a": 2, "b": 1}), 4, 2.0, ["a"]) == pytest.approx(4.4 / 4.1)
    assert bm25(Counter({"a": 1}), 3, 0.0, ["a", "z"]) == pytest.approx(1.0)
    assert bm25(Counter({"a": 1, "b": 3}), 8, 4.0, ["a", "b"]) == pytest.approx(
        2.2 / (1 + 1.2 * 1.75) + 6.6 / (3 + 1.2 * 1.75)
    )


def test_rank_takes_the_average_length_of_the_hits() -> None:
    """1.375 against 1.158 with the average of 30 words; the other way round were the
    average anything else."""
    short = hit(1, "fox " + "w " * 9)
    longer = hit(2, "fox fox " + "w " * 48)
    assert [h.exchange.id for h in rank([longer, short], ["fox"])] == [1, 2]


def test_rank_counts_the_words_of_message_and_reply_in_any_script() -> None:
    in_reply = hit(1, "x", "fox fox")
    once = hit(2, "fox y", "")
    assert [h.exchange.id for h in rank([once, in_reply], ["fox"])] == [1, 2]
    accented = hit(3, "Renée renée renee", "é")
    plain = hit(4, "renee x y", "z")
    assert [h.exchange.id for h in rank([plain, accented], ["renee"])] == [3, 4]


def test_rank_weighs_every_word_of_the_query() -> None:
    one = hit(1, "cat cat cat dog")
    two = hit(2, "cat dog dog dog dog")
    assert [h.exchange.id for h in rank([one, two], ["cat"])] == [1, 2]
    assert [h.exchange.id for h in rank([one, two], ["dog"])] == [2, 1]
    both, twice = hit(3, "cat dog"), hit(4, "cat cat")
    assert [h.exchange.id for h in rank([twice, both], ["cat", "dog"])] == [3, 4]


def test_rank_discounts_length_against_the_average() -> None:
    """Of two exchanges holding the word twice, the shorter first; a one-hit list scores
    without dividing by zero."""
    short, longer = hit(1, "owl owl"), hit(2, "owl owl " + "x " * 10)
    assert [h.exchange.id for h in rank([longer, short], ["owl"])] == [1, 2]
    assert [h.exchange.id for h in rank([hit(5, "")], ["owl"])] == [5]


# -- snippets -------------------------------------------------------------------------------


def joined(parts: tuple[Part, ...]) -> str:
    return "".join(part.text for part in parts)


def matched(parts: tuple[Part, ...]) -> list[str]:
    return [part.text for part in parts if part.match]


def test_a_short_text_is_whole_with_its_matches_marked() -> None:
    assert snippet("The Fox, the fox.", {"fox"}) == (
        Part("The ", False),
        Part("Fox", True),
        Part(", the ", False),
        Part("fox", True),
        Part(".", False),
    )


def test_a_match_far_in_is_shown_with_a_little_before_it() -> None:
    text = " ".join(f"w{n:03}" for n in range(100)) + " target " + "tail " * 5
    parts = snippet(text, {"target"})
    assert parts[0] == Part(ELLIPSIS, False)
    shown = joined(parts[1:])
    assert shown.startswith("w09")
    assert 0 < shown.index("target") <= 40
    assert matched(parts) == ["target"]
    assert parts[-1] == Part("tail tail tail tail tail ", False) or parts[-1].text != ELLIPSIS


def test_a_long_text_is_cut_between_words_near_the_width() -> None:
    text = "needle " + "haystack " * 40
    parts = snippet(text, {"needle"}, width=30)
    assert parts[-1] == Part(ELLIPSIS, False)
    assert parts[0] == Part("needle", True)
    shown = joined(parts[:-1])
    assert shown == "needle haystack haystack"
    assert len(shown) <= 30


def test_a_word_longer_than_the_width_is_cut_at_the_width() -> None:
    parts = snippet("a" * 50 + " b", {"b"}, width=20)
    assert joined(parts).startswith(ELLIPSIS)
    assert parts == (Part(ELLIPSIS, False), Part("b", True))
    assert snippet("x" * 50, set(), width=20) == (Part("x" * 20, False), Part(ELLIPSIS, False))


def test_the_first_match_is_shown_wherever_the_cut_falls() -> None:
    parts = snippet("aa bbbbbbbbbb cc", {"bbbbbbbbbb"}, width=5)
    assert parts == (Part("aa ", False), Part("bbbbbbbbbb", True), Part(ELLIPSIS, False))


def test_a_match_the_cut_would_split_stays_whole() -> None:
    parts = snippet("fox-foxes-and-more", {"fox", "foxes"}, width=6)
    assert parts == (
        Part("fox", True),
        Part("-", False),
        Part("foxes", True),
        Part(ELLIPSIS, False),
    )


def test_matches_past_the_cut_are_left_out() -> None:
    parts = snippet("fox " + "x " * 100 + "fox", {"fox"}, width=20)
    assert matched(parts) == ["fox"]
    assert parts[-1] == Part(ELLIPSIS, False)


def test_a_text_without_the_words_shows_its_start() -> None:
    assert snippet("nothing here", {"fox"}) == (Part("nothing here", False),)


def test_the_lead_before_a_match_is_cut_at_a_space() -> None:
    text = "x" * 100 + " ab cd fox"
    parts = snippet(text, {"fox"})
    assert parts == (Part(ELLIPSIS, False), Part("ab cd ", False), Part("fox", True))
    nospace = "y" * 100 + "-fox"
    assert snippet(nospace, {"fox"}) == (Part(ELLIPSIS, False), Part("fox", True))


def test_the_lead_starts_at_the_first_space_within_it() -> None:
    text = "a" * 60 + " " + "b" * 38 + " fox"
    assert snippet(text, {"fox"}) == (
        Part(ELLIPSIS, False),
        Part("b" * 38 + " ", False),
        Part("fox", True),
    )
    glued = "y" * 100 + "-fox tail"
    assert snippet(glued, {"fox"}) == (
        Part(ELLIPSIS, False),
        Part("fox", True),
        Part(" tail", False),
    )


@pytest.mark.parametrize(
    ("text", "width", "shown"),
    [
        ("ab cd", 5, "ab cd"),  # exactly the width: whole
        ("aaaa bbbb cccc", 9, "aaaa bbbb"),  # a space right at the width
        ("aaaa bbbbb cc", 9, "aaaa"),  # one just past it
        (" " + "x" * 50, 20, " " + "x" * 19),  # a space at the start is no place to cut
    ],
)
def test_the_cut_is_at_the_last_space_within_the_width(text: str, width: int, shown: str) -> None:
    parts = snippet(text, set(), width=width)
    assert joined(parts) == (shown if shown == text else shown + ELLIPSIS)


def test_a_match_just_past_a_cut_inside_a_word_is_left_out() -> None:
    parts = snippet("fox-aaa-fox-b", {"fox"}, width=8)
    assert parts == (Part("fox", True), Part("-aaa-", False), Part(ELLIPSIS, False))


def test_a_match_just_after_the_lead_is_shown_from_the_start() -> None:
    text = "a" * 39 + " fox"
    assert snippet(text, {"fox"})[0] == Part("a" * 39 + " ", False)


def test_a_result_takes_the_text_holding_more_of_the_words() -> None:
    words = ["cat", "dog"]
    in_reply = result(hit(3, "a cat", "a cat\n and\ta  dog", title=None), words)
    assert (in_reply.field, joined(in_reply.snippet)) == (AI, "a cat and a dog")
    assert (in_reply.conversation_id, in_reply.turn, in_reply.conversation_title) == ("c", 3, None)
    assert in_reply.created_at == "2026-01-01T00:00:00.000Z"
    even = result(hit(4, "cat", "dog"), words)
    assert (even.field, matched(even.snippet)) == (USER, ["cat"])
    assert result_body(even) == {
        "conversation_id": "c",
        "conversation_title": "T",
        "turn": 4,
        "created_at": "2026-01-01T00:00:00.000Z",
        "field": "user",
        "snippet": [{"text": "cat", "match": True}],
    }


# -- the query string -----------------------------------------------------------------------


def parsed(**params: str) -> SearchQuery:
    return parse_search_query(MultiDict(params))


def refusal(**params: str) -> str:
    with pytest.raises(ApiError) as refused:
        parsed(**params)
    assert refused.value.status == 400
    return refused.value.message


def test_a_query_takes_twenty_results_unless_told() -> None:
    assert parsed(q="fox") == SearchQuery("fox", 20)
    assert parsed(q=" fox ", limit="50") == SearchQuery(" fox ", 50)
    assert parsed(q="x" * 200, limit="1") == SearchQuery("x" * 200, 1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Query parameter 'q' is required."),
        ({"q": ""}, "Query parameter 'q' must not be blank."),
        ({"q": " \u3000\ufeff"}, "Query parameter 'q' must not be blank."),
        ({"q": "x" * 201}, "Query parameter 'q' must be at most 200 characters."),
        ({"q": "x", "limit": "51"}, "Query parameter 'limit' must be at most 50."),
        ({"q": "x", "limit": "0"}, "Query parameter 'limit' must be a positive integer."),
        ({"q": "x", "limit": "ten"}, "Query parameter 'limit' must be a positive integer."),
    ],
)
def test_bad_queries_say_what_to_fix(params: dict[str, str], message: str) -> None:
    assert refusal(**params) == message


# -- the route, on both stores --------------------------------------------------------------


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


async def send(client: Client, conversation: str, message: str) -> None:
    response = await client.post(
        "/chat/message", json={"message": message, "conversation_id": conversation}
    )
    assert response.status == 200, await response.text()


async def search(client: Client, query: str, status: int = 200) -> Any:
    response = await client.get(f"/chat/search?{query}")
    body = await response.json()
    assert response.status == status, body
    validate_response("/chat/search", "GET", status, body)
    return body


async def test_search_finds_the_callers_exchanges_with_snippets(make_client: MakeClient) -> None:
    client = await make_client()
    await send(client, "trip", "Which train goes to Zürich?")
    await send(client, "trip", "And a night train?")
    await send(client, "food", "Best rösti in Zurich")
    body = await search(client, "q=zurich+TRAIN")
    (found,) = body["results"]
    assert {key: found[key] for key in ("conversation_id", "turn", "field")} == {
        "conversation_id": "trip",
        "turn": 1,
        "field": "user",
    }
    assert found["conversation_title"] == "Which train goes to Zürich?"
    assert found["snippet"] == [
        {"text": "Which ", "match": False},
        {"text": "train", "match": True},
        {"text": " goes to ", "match": False},
        {"text": "Zürich", "match": True},
        {"text": "?", "match": False},
    ]
    assert sorted(r["conversation_id"] for r in (await search(client, "q=zurich"))["results"]) == [
        "food",
        "trip",
    ]
    assert len((await search(client, "q=train&limit=1"))["results"]) == 1
    assert (await search(client, "q=nowhere"))["results"] == []


async def test_a_reply_is_searched_and_shown_when_it_holds_the_words(
    make_client: MakeClient,
) -> None:
    """The dummy's first reply says "Nice to meet you"."""
    client = await make_client()
    await send(client, "c", "hello")
    (found,) = (await search(client, "q=nice+meet"))["results"]
    assert found["field"] == "AI"
    assert [part["text"] for part in found["snippet"] if part["match"]] == ["Nice", "meet"]


@pytest.mark.parametrize(
    "query",
    ["%22", "NEAR%28a%29", "a%20OR%20b", "*", "-x", "%5E", "col%3Ax", "%27", "%5C", "%00", "!!!"],
)
async def test_query_syntax_is_never_syntax(make_client: MakeClient, query: str) -> None:
    client = await make_client()
    await send(client, "c", "a b x col near")
    body = await search(client, f"q={query}")
    assert isinstance(body["results"], list)


async def test_a_query_of_punctuation_alone_finds_nothing(make_client: MakeClient) -> None:
    client = await make_client()
    await send(client, "c", "hello!!!")
    assert (await search(client, "q=!!!"))["results"] == []


async def test_bad_queries_are_400s_in_the_error_shape(make_client: MakeClient) -> None:
    client = await make_client()
    body = await search(client, "", status=400)
    assert body == {"status": "error", "message": "Query parameter 'q' is required."}
    body = await search(client, "q=x&limit=51", status=400)
    assert body["message"] == "Query parameter 'limit' must be at most 50."


async def test_a_deleted_conversation_is_not_found(make_client: MakeClient) -> None:
    client = await make_client()
    await send(client, "doomed", "kangaroo")
    await send(client, "kept", "kangaroo")
    assert len((await search(client, "q=kangaroo"))["results"]) == 2
    assert (await client.delete("/chat/conversations/doomed")).status == 204
    (left,) = (await search(client, "q=kangaroo"))["results"]
    assert left["conversation_id"] == "kept"


async def test_a_failing_store_is_a_500_that_says_so(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    await send(client, "c", "kangaroo")
    await break_table(settings)
    body = await search(client, "q=kangaroo", status=500)
    assert body == {"status": "error", "message": "Failed to search the conversations."}
