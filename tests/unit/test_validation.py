"""The contract's validation, both sides of every boundary, with the message a client gets.

Each rejection's message is the contract's promise to say what to fix, so it is pinned
here word for word.
"""

from __future__ import annotations

import json
import unicodedata

import pytest
from jsonschema import Draft202012Validator
from multidict import CIMultiDict, MultiDict

from chat_service.api.errors import ApiError
from chat_service.api.validation import (
    EventsQuery,
    HistoryQuery,
    NewMessage,
    decode_cursor,
    parse_change_body,
    parse_conversations_query,
    parse_events_query,
    parse_history_query,
    parse_message_body,
    parse_new_conversation_body,
)
from chat_service.chat.domain import ConversationCursor, SettingsChange
from tests.support.openapi import spec

LIMIT = 10  # CHAT_MAX_MESSAGE_CHARS, small for the tests
ID_RULE = (
    "'conversation_id' must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
    "starting with a letter or digit."
)


def body(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def rejected(raw: bytes) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        parse_message_body(raw, max_chars=LIMIT)
    return refused.value.status, refused.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "Request body is not valid UTF-8."),
        (b"{", "Request body is not valid JSON."),
        (b"", "Request body is not valid JSON."),
        (b"[" * 100_000, "Request body is not valid JSON."),  # too deep: RecursionError
        (b'"text"', "Request body must be a JSON object."),
        (b"[]", "Request body must be a JSON object."),
        (b"{}", "Field 'message' is required."),
        (b'{"text": "hi"}', "Field 'message' is required."),
        (b'{"message": 5}', "Field 'message' must be a string."),
        (b'{"message": null}', "Field 'message' must be a string."),
        (b'{"message": ""}', "Field 'message' must not be blank."),
        (b'{"message": "hi", "message": "again"}', "Request body has a duplicate key: 'message'."),
        (b'{"message": "a\\u0000b"}', "Field 'message' must not contain NUL characters."),
        (
            b'{"message": "a\\ud800b"}',
            "Field 'message' must be valid Unicode (no lone surrogates).",
        ),
        (b'{"message": "12345678901"}', "Field 'message' must be at most 10 characters."),
        (
            b'{"message": "hi", "conversation_id": null}',
            "'conversation_id' must be a string when given.",
        ),
    ],
)
def test_each_rejection_says_what_to_fix(raw: bytes, message: str) -> None:
    assert rejected(raw) == (400, message)


@pytest.mark.parametrize(
    "blank",
    [" ", "\t\n\r\v\f", "\u00a0", "\u1680", "\u2000\u200a", "\u2028\u2029", "\u202f", "\u205f",
     "\u3000", "\ufeff", " \u3000\ufeff "],
)  # fmt: skip
def test_blank_is_any_whitespace_the_openapi_pattern_calls_blank(blank: str) -> None:
    assert rejected(body({"message": blank})) == (400, "Field 'message' must not be blank.")


@pytest.mark.parametrize("text", ["a", "\u200bword", "\u3000x\u3000", "🙂"])
def test_a_message_with_something_to_say_is_accepted(text: str) -> None:
    assert parse_message_body(body({"message": text}), max_chars=LIMIT) == NewMessage(
        "default", text
    )


def test_the_length_limit_is_inclusive() -> None:
    exactly = "x" * LIMIT
    assert parse_message_body(body({"message": exactly}), max_chars=LIMIT).text == exactly
    assert rejected(body({"message": exactly + "x"}))[0] == 400
    # Characters, not bytes: ten 4-byte characters fit.
    emoji = "😀" * LIMIT
    assert parse_message_body(body({"message": emoji}), max_chars=LIMIT).text == emoji


@pytest.mark.parametrize(
    "conversation",
    ["a", "Z9", "team.chat_1:2-3", "x" * 128, "0", "a.", "a-", "a:"],
)
def test_conversation_ids_that_are_accepted(conversation: str) -> None:
    parsed = parse_message_body(
        body({"message": "hi", "conversation_id": conversation}), max_chars=LIMIT
    )
    assert parsed == NewMessage(conversation, "hi")


@pytest.mark.parametrize(
    "conversation",
    [".a", "-a", ":a", "_a", "", "x" * 129, "a b", "a/b", "ä", 5, True, [], {}],
)
def test_conversation_ids_that_are_refused(conversation: object) -> None:
    assert rejected(body({"message": "hi", "conversation_id": conversation})) == (400, ID_RULE)


def test_other_fields_are_ignored() -> None:
    raw = body({"message": "hi", "stream": True, "extra": [1, 2]})
    assert parse_message_body(raw, max_chars=LIMIT) == NewMessage("default", "hi")


# -- GET /chat/history's query --------------------------------------------------------------


def query(**params: str) -> HistoryQuery:
    return parse_history_query(MultiDict(params))


def query_rejected(**params: str) -> str:
    with pytest.raises(ApiError) as refused:
        query(**params)
    assert refused.value.status == 400
    return refused.value.message


def test_no_parameters_is_the_whole_default_conversation() -> None:
    assert query() == HistoryQuery("default", None, None)


def test_limits_accepted_up_to_one_thousand() -> None:
    assert query(limit="1").limit == 1
    assert query(limit="1000").limit == 1000
    assert query_rejected(limit="1001") == "Query parameter 'limit' must be at most 1000."


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "", "ten", "+5", " 5", "0x10", "٣"])
def test_limit_must_be_a_positive_integer(value: str) -> None:
    assert query_rejected(limit=value) == "Query parameter 'limit' must be a positive integer."


def test_cursors_are_t_and_a_turn_of_up_to_nine_digits() -> None:
    assert query(before="t1").before_turn == 1
    assert query(before="t999999999").before_turn == 999_999_999
    assert query(before="t007").before_turn == 7
    assert query(before="t0").before_turn == 0, "before the first: an empty page"


BAD_CURSOR = "Query parameter 'before' must be a cursor from a Link header, such as t42."


@pytest.mark.parametrize(
    "value",
    # Ten digits could pass the stores' 32-bit turns: refused as a bad cursor, never a 500.
    ["", "t", "t-1", "T5", "t 5", "t1.", "t1.x", "t.5", "t٣", "t1234567890", "ten", "9" * 19],
)
def test_anything_else_is_no_cursor(value: str) -> None:
    assert query_rejected(before=value) == BAD_CURSOR


@pytest.mark.parametrize("value", ["1", "42", "000000000000000007", "9" * 18])
def test_a_cursor_of_an_earlier_version_is_answered_as_one(value: str) -> None:
    """Earlier versions' cursors were global exchange ids: a client that kept one is told
    where it comes from and what to do, not that it is malformed."""
    assert query_rejected(before=value) == (
        "Query parameter 'before' is a cursor from an earlier version of the service; "
        "load the history again and page with the cursors of its Link headers."
    )


def events(query: dict[str, str], headers: dict[str, str] | None = None) -> EventsQuery:
    return parse_events_query(MultiDict(query), CIMultiDict(headers or {}))


def test_an_event_stream_resumes_after_a_turn_the_header_first() -> None:
    assert events({}) == EventsQuery("default", None)
    assert events({"last_event_id": "t0"}) == EventsQuery("default", 0)
    assert events({"last_event_id": ""}, {"Last-Event-ID": ""}) == EventsQuery("default", None)
    assert events({"last_event_id": "t1"}, {"last-event-id": "t9"}).after_turn == 9
    assert events({"last_event_id": "t1"}, {"Last-Event-ID": ""}).after_turn == 1


def test_an_event_stream_resumes_at_the_generation_it_knows() -> None:
    assert events({"last_event_id": "t7.2"}) == EventsQuery("default", 7, generation=2)
    assert events({}, {"Last-Event-ID": "t7.10"}) == EventsQuery("default", 7, generation=10)
    assert events({"last_event_id": "t7"}).generation == 0
    assert query(before="t7.3").before_turn == 7, "an item's id pages the history too"


def test_an_event_streams_earlier_cursor_is_noted_not_refused() -> None:
    assert events({"last_event_id": "5"}) == EventsQuery("default", None, "last_event_id")
    assert events({}, {"Last-Event-ID": "5"}) == EventsQuery("default", None, "Last-Event-ID")
    # The header an EventSource reconnects with wins over its URL's earlier number.
    assert events({"last_event_id": "5"}, {"Last-Event-ID": "t3"}) == EventsQuery("default", 3)
    assert events({"last_event_id": "t3"}, {"Last-Event-ID": "5"}).earlier_cursor_in == (
        "Last-Event-ID"
    )


def test_the_conversation_of_a_history_query() -> None:
    assert query(conversation_id="team.a").conversation_id == "team.a"
    assert query_rejected(conversation_id="-team") == ID_RULE


def _refuses_title(title: str) -> bool:
    try:
        parse_change_body(body({"title": title}), max_prompt_chars=10)
    except ApiError:
        return True
    return False


# Control (Cc) and format (Cf) characters of the Basic Multilingual Plane, where JSON Schema's
# patterns (ECMA-262 escapes of four hex digits) can name them; the service refuses the others.
# Not the two joiners, which emoji sequences and scripts are written with.
JOINERS = {"\u200c", "\u200d"}
INVISIBLE = [
    chr(code)
    for code in range(0x10000)
    if unicodedata.category(chr(code)) in {"Cc", "Cf"} and chr(code) not in JOINERS
]


def test_the_openapi_title_pattern_refuses_what_the_service_refuses() -> None:
    """The document promises the rule clients can check before sending; a Unicode version
    adding a format character to the BMP fails here until the pattern lists it too."""
    title = Draft202012Validator(spec()["components"]["schemas"]["Title"])
    assert {"\x00", "\x85", "\u00ad", "\u200b", "\u202e", "\u2066", "\ufeff"} <= set(INVISIBLE)
    disagree = [
        f"U+{ord(char):04X}"
        for char in INVISIBLE
        if title.is_valid(f"a{char}b") or not _refuses_title(f"a{char}b")
    ]
    assert disagree == [], f"Unicode {unicodedata.unidata_version}"
    for fine in [
        "Trip to Lisbon",
        "Привет, мир",
        "שלום",
        "مرحبا",
        "🙂 a b",
        "a\u200db",
        "a\u200cb",
    ]:
        assert title.is_valid(fine), fine
        assert not _refuses_title(fine), fine


def rejection(parse: object, raw: bytes) -> str:
    with pytest.raises(ApiError) as refused:
        parse(raw, max_prompt_chars=10)  # type: ignore[operator]
    assert refused.value.status == 400
    return str(refused.value.message)


def test_a_change_says_what_it_changes_and_keeps_the_rest() -> None:
    assert parse_change_body(body({"title": " A  b "}), max_prompt_chars=10) == (
        "A b",
        SettingsChange(),
    )
    assert parse_change_body(body({"model": "gpt-4o"}), max_prompt_chars=10) == (
        None,
        SettingsChange(model="gpt-4o"),
    )
    # null: back to the deployment's; "": no instructions at all.
    assert parse_change_body(body({"model": None, "system_prompt": ""}), max_prompt_chars=10) == (
        None,
        SettingsChange(model=None, system_prompt=""),
    )
    assert parse_change_body(body({"system_prompt": "x" * 10}), max_prompt_chars=10)[1] == (
        SettingsChange(system_prompt="x" * 10)
    ), "as long as a message may be"
    assert not SettingsChange().changes_anything
    assert SettingsChange(model=None).changes_anything
    assert SettingsChange(system_prompt=None).changes_anything


def test_a_change_that_changes_nothing_or_something_unreadable_is_refused() -> None:
    assert "at least one" in rejection(parse_change_body, body({}))
    assert "at least one" in rejection(parse_change_body, body({"name": "x"}))
    assert rejection(parse_change_body, body({"system_prompt": "x" * 11})) == (
        "Field 'system_prompt' must be at most 10 characters."
    )
    # A NUL, and a lone surrogate (valid JSON, escaped, but no Unicode text).
    for raw in (body({"system_prompt": "a\x00b"}), b'{"system_prompt": "\\ud800"}'):
        assert rejection(parse_change_body, raw) == (
            "Field 'system_prompt' must be Unicode text without NUL characters."
        )
    assert rejection(parse_change_body, body({"system_prompt": 3})) == (
        "Field 'system_prompt' must be a string or null."
    )
    for model in ["", "x" * 201, "tab\there", 42, ["gpt-4o"]]:
        assert rejection(parse_change_body, body({"model": model})) == (
            "Field 'model' must be a model's name (1-200 printable characters); "
            "GET /chat/models lists them."
        ), model
    for model in ("m", "m" * 200):
        assert parse_change_body(body({"model": model}), max_prompt_chars=10)[1].model == model


def test_a_new_conversation_may_come_with_its_settings() -> None:
    assert parse_new_conversation_body(b"", max_prompt_chars=10) == (None, SettingsChange())
    assert parse_new_conversation_body(
        body({"model": "llama3", "system_prompt": "Be brief."}), max_prompt_chars=10
    ) == (None, SettingsChange(model="llama3", system_prompt="Be brief."))
    assert SettingsChange(model="llama3").as_created() == ("llama3", None)
    assert SettingsChange(system_prompt="").as_created() == (None, "")
    assert "at most 10" in rejection(parse_new_conversation_body, body({"system_prompt": "x" * 11}))


def test_a_message_may_name_its_model() -> None:
    assert parse_message_body(body({"message": "hi"}), max_chars=10).model is None
    named = parse_message_body(body({"message": "hi", "model": "gpt-4o"}), max_chars=10)
    assert named.model == "gpt-4o"
    with pytest.raises(ApiError, match="GET /chat/models"):
        parse_message_body(body({"message": "hi", "model": None}), max_chars=10)


def test_a_conversations_cursor_keeps_an_id_with_dots_and_the_limit_its_bound() -> None:
    """What mutation testing found untested: the id after the cursor's first dot is the
    conversation's whole id (ids may hold dots), and a limit of exactly the bound is taken."""
    assert decode_cursor("1764936000000.team.a") == ConversationCursor(
        "2025-12-05T12:00:00.000Z", "team.a"
    )
    assert parse_conversations_query({"limit": "100"}).limit == 100
    with pytest.raises(ApiError):
        parse_conversations_query({"limit": "101"})
