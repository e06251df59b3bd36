"""The store's three parts, held to the same rules on both backends (store/base.py): the
exchange log, the conversation catalogue and the change feed. Each test runs on SQLite and on
PostgreSQL; what is particular to one backend (files, migrations, locks) is tested beside it
(test_store.py, test_postgres_store.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from chat_service.chat.contract import HISTORY_KEYS, history_json
from chat_service.chat.domain import (
    NO_ORIGIN,
    NO_SETTINGS,
    ConversationCursor,
    ConversationRef,
    ConversationSettings,
    Exchange,
    ReplyOrigin,
    SettingsChange,
)
from chat_service.store import ChatStore, postgres, sqlite
from chat_service.store.postgres import PostgresChatStore
from chat_service.store.search_terms import query_words
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.refs import ref

ALICE, BOB = "key:alice", "key:bob"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Text JSON must escape, and text it must not: quotes, backslashes, every control character,
# the line separators JavaScript once choked on, non-BMP characters, a slash.
AWKWARD = '"quoted" \\ back/slash \t\n\r\b\f \x01\x1f\x7f é 😀 \u2028\u2029 </script>'


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChatStore]:
    opened: ChatStore
    if request.param == "sqlite":
        opened = await SQLiteChatStore.open(tmp_path / "chat.db")
    else:
        opened = await PostgresChatStore.open(request.getfixturevalue("postgres_url"))
    yield opened
    await opened.close()


async def listening(store: ChatStore) -> list[ConversationRef | None]:
    """A change listener's list, once the feed hears: PostgreSQL's listening connection says
    so with its catch-up (``None``) when it is in place; SQLite's feed is this process."""
    changed: list[ConversationRef | None] = []
    store.add_change_listener(changed.append)
    if isinstance(store, PostgresChatStore):
        await eventually(lambda: None in changed)
        changed.clear()
    return changed


async def eventually(condition: Callable[[], bool]) -> None:
    """What PostgreSQL's feed hears comes through its own connection, a moment later."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not heard within 5 s")


# -- the exchange log ------------------------------------------------------------------


async def test_an_append_returns_the_exchange_as_stored(store: ChatStore) -> None:
    first = await store.append(ref("c", ALICE), "hi", "hello", trace_id="ab" * 16)
    second = await store.append(ref("c", ALICE), "again", "and again")
    assert (first.conversation, first.turn, first.user, first.ai) == (
        ConversationRef(ALICE, "c"),
        1,
        "hi",
        "hello",
    )
    assert first.trace_id == "abababababababababababababababab"
    assert TIMESTAMP.fullmatch(first.created_at)
    assert (second.turn, second.trace_id) == (2, None)
    assert second.id > first.id
    assert (await store.history(ref("c", ALICE))).exchanges == [first, second]


async def test_each_owner_has_its_own_conversation_of_an_id(store: ChatStore) -> None:
    await store.append(ref("c", ALICE), "alice's", "r")
    theirs = await store.append(ref("c", BOB), "bob's", "r")
    assert theirs.turn == 1
    assert [e.user for e in (await store.history(ref("c", BOB))).exchanges] == ["bob's"]
    assert [e.user for e in (await store.history(ref("c"))).exchanges] == [], "the anonymous"
    assert await store.version(ref("c")) == 0


async def test_the_version_is_the_newest_exchange_id(store: ChatStore) -> None:
    assert await store.version(ref("c")) == 0
    await store.append(ref("c"), "one", "r")
    newest = await store.append(ref("c"), "two", "r")
    await store.append(ref("other"), "elsewhere", "r")
    assert await store.version(ref("c")) == newest.id


async def test_the_last_turn_is_the_newest_exchanges_turn(store: ChatStore) -> None:
    assert await store.last_turn(ref("c")) == 0
    await store.append(ref("c"), "one", "r")
    for name in ("other", "c", "other"):  # other conversations' exchanges count for nothing
        await store.append(ref(name), "m", "r")
    assert await store.last_turn(ref("c")) == 2
    assert await store.last_turn(ref("c", ALICE)) == 0, "another owner's c"


async def test_history_pages_go_back_from_the_newest_by_turn(store: ChatStore) -> None:
    stored = []
    for i in range(5):  # interleaved with another conversation's: their ids have gaps
        stored.append(await store.append(ref("c"), f"m{i}", "r"))
        await store.append(ref("other"), f"o{i}", "r")
    assert [e.turn for e in stored] == [1, 2, 3, 4, 5]
    page = await store.history(ref("c"), limit=2)
    assert ([e.user for e in page.exchanges], page.has_older) == (["m3", "m4"], True)
    older = await store.history(ref("c"), limit=2, before_turn=page.exchanges[0].turn)
    assert ([e.user for e in older.exchanges], older.has_older) == (["m1", "m2"], True)
    oldest = await store.history(ref("c"), limit=2, before_turn=older.exchanges[0].turn)
    assert ([e.user for e in oldest.exchanges], oldest.has_older) == (["m0"], False)
    whole = await store.history(ref("c"), before_turn=4)
    assert ([e.user for e in whole.exchanges], whole.has_older) == (["m0", "m1", "m2"], False)
    assert (await store.history(ref("c"), limit=2, before_turn=1)).exchanges == []


async def test_exchanges_after_a_turn_come_oldest_first(store: ChatStore) -> None:
    for i in range(5):
        await store.append(ref("c"), f"m{i}", "r")
        await store.append(ref("other"), f"o{i}", "r")
    after = await store.exchanges_after(ref("c"), 2, limit=2)
    assert [(e.turn, e.user) for e in after] == [(3, "m2"), (4, "m3")]
    assert [e.user for e in await store.exchanges_after(ref("c"), 0, limit=1)] == ["m0"]
    assert await store.exchanges_after(ref("c"), 5, limit=10) == []


async def test_turns_start_again_after_a_deletion_and_pages_follow_them(
    store: ChatStore,
) -> None:
    """A deleted conversation's id written to again starts at turn 1: the reads by turn
    see only the new exchanges, never the deleted ones whose turns they reuse."""
    for i in range(3):
        await store.append(ref("c"), f"old {i}", "r")
    assert await store.delete_conversation(ref("c"))
    assert await store.last_turn(ref("c")) == 0
    again = await store.append(ref("c"), "new", "r")
    assert (again.turn, await store.last_turn(ref("c"))) == (1, 1)
    assert [e.user for e in await store.exchanges_after(ref("c"), 0, limit=10)] == ["new"]
    assert (await store.history(ref("c"), limit=5, before_turn=3)).exchanges == [again]


async def test_history_json_is_what_the_contract_writes_byte_for_byte(store: ChatStore) -> None:
    """SQLite writes the document itself (json_group_array), PostgreSQL's store with the
    contract's code: either way, the same bytes for the same exchanges."""
    for i in range(3):
        await store.append(ref("c"), f"{AWKWARD} {i}", f"{AWKWARD[::-1]} {i}")
    stored = (await store.history(ref("c"))).exchanges
    document = await store.history_json(ref("c"), keys=HISTORY_KEYS)
    assert document == history_json(stored)
    older = await store.history_json(ref("c"), keys=HISTORY_KEYS, before_turn=stored[2].turn)
    assert older == history_json(stored[:2])
    assert await store.history_json(ref("nobody"), keys=HISTORY_KEYS) == b"[]"


async def test_each_reply_keeps_its_origin(store: ChatStore) -> None:
    """The model that answered and the tokens it reported are stored with the reply, and
    come back from every read; what is unknown stays unknown (null), not zero."""
    origins = [
        ReplyOrigin("gpt-4o-2024-08-06", 1200, 0),
        ReplyOrigin("llama3.1:8b"),
        ReplyOrigin(None, None, 17),
        NO_ORIGIN,
    ]
    appended = [
        await store.append(ref("c"), f"m{i}", f"r{i}", origin=origin)
        for i, origin in enumerate(origins)
    ]
    assert [e.origin for e in appended] == origins
    assert [e.origin for e in (await store.history(ref("c"))).exchanges] == origins
    assert [e.origin for e in await store.exchanges_after(ref("c"), 1, limit=9)] == origins[1:]
    document = await store.history_json(ref("c"), keys=HISTORY_KEYS)
    assert document == history_json(appended), "SQLite's own JSON is the contract's too"
    items = orjson.loads(document)
    assert [(item["model"], item["usage"]) for item in items] == [
        ("gpt-4o-2024-08-06", {"input_tokens": 1200, "output_tokens": 0}),
        ("llama3.1:8b", None),
        (None, {"input_tokens": None, "output_tokens": 17}),
        (None, None),
    ]
    assert all(TIMESTAMP.fullmatch(item["created_at"]) for item in items)


async def test_commit_listeners_hear_each_commit_before_its_append_returns(
    store: ChatStore,
) -> None:
    heard: list[list[Exchange]] = []
    store.add_commit_listener(lambda exchanges: heard.append(list(exchanges)))
    stored = await store.append(ref("c"), "m", "r")
    assert heard == [[stored]]


# -- the conversation catalogue ----------------------------------------------------------


async def test_a_conversation_is_created_once_and_found_by_its_owner(store: ChatStore) -> None:
    created = await store.create_conversation(ref("new", ALICE), "A title")
    assert created is not None
    assert (created.id, created.title, created.exchanges) == ("new", "A title", 0)
    assert TIMESTAMP.fullmatch(created.created_at)
    assert await store.create_conversation(ref("new", ALICE), "again") is None
    assert await store.conversation(ref("new", ALICE)) == created
    assert await store.conversation(ref("new", BOB)) is None


async def test_a_first_message_starts_and_titles_a_conversation(store: ChatStore) -> None:
    await store.append(ref("c", ALICE), "  What is\nthe time?  ", "r")
    await store.append(ref("c", ALICE), "second", "r")
    found = await store.conversation(ref("c", ALICE))
    assert found is not None
    assert (found.title, found.exchanges) == ("What is the time?", 2)


async def test_an_owner_lists_its_conversations_most_recently_active_first(
    store: ChatStore,
) -> None:
    for name in ("a", "b", "c", "a"):  # a millisecond apart: timestamps are to the ms
        await store.append(ref(name, ALICE), name, "r")
        await asyncio.sleep(0.002)
    await store.append(ref("x", BOB), "bob's", "r")
    listed = await store.conversations(ALICE, limit=2)
    assert [c.id for c in listed] == ["a", "c"]
    cursor = ConversationCursor(listed[-1].updated_at, listed[-1].id)
    assert [c.id for c in await store.conversations(ALICE, limit=2, after=cursor)] == ["b"]
    assert [c.id for c in await store.conversations(BOB, limit=10)] == ["x"]


async def test_a_conversation_is_renamed_by_its_owner_only(store: ChatStore) -> None:
    await store.append(ref("c", ALICE), "first", "r")
    renamed = await store.rename_conversation(ref("c", ALICE), "Renamed")
    assert renamed is not None
    assert (renamed.id, renamed.title, renamed.exchanges) == ("c", "Renamed", 1)
    assert await store.rename_conversation(ref("c", BOB), "Stolen") is None
    assert await store.rename_conversation(ref("missing", ALICE), "Nothing") is None


async def test_a_conversations_model_and_instructions_are_its_owners_to_change(
    store: ChatStore,
) -> None:
    plain = await store.create_conversation(ref("p", ALICE), "plain")
    assert plain is not None
    assert (plain.model, plain.system_prompt) == (None, None), "the deployment's"
    made = await store.create_conversation(
        ref("c", ALICE), "t", SettingsChange(model="m1", system_prompt="Be brief.")
    )
    assert made is not None
    assert (made.title, made.model, made.system_prompt) == ("t", "m1", "Be brief.")
    model_only = await store.configure_conversation(ref("c", ALICE), SettingsChange(model="m2"))
    assert model_only is not None
    assert (model_only.model, model_only.system_prompt) == ("m2", "Be brief."), "prompt kept"
    prompt_only = await store.configure_conversation(
        ref("c", ALICE), SettingsChange(system_prompt="")
    )
    assert prompt_only is not None
    assert (prompt_only.model, prompt_only.system_prompt) == ("m2", "")
    await store.append(ref("c", ALICE), "m", "r")
    renamed = await store.rename_conversation(ref("c", ALICE), "new")
    assert renamed is not None
    assert (renamed.title, renamed.model, renamed.system_prompt, renamed.exchanges) == (
        "new",
        "m2",
        "",
        1,
    )
    reset = await store.configure_conversation(
        ref("c", ALICE), SettingsChange(model=None, system_prompt=None)
    )
    assert reset is not None
    assert (reset.model, reset.system_prompt) == (None, None)
    assert await store.configure_conversation(ref("c", BOB), SettingsChange(model="x")) is None
    assert await store.configure_conversation(ref("nope", ALICE), SettingsChange()) is None
    listed = await store.conversations(ALICE, limit=5)
    assert {c.id: (c.model, c.system_prompt) for c in listed} == {
        "c": (None, None),
        "p": (None, None),
    }


async def test_deleting_takes_the_conversation_and_its_exchanges(store: ChatStore) -> None:
    await store.append(ref("c", ALICE), "first", "r")
    await store.append(ref("c", BOB), "bob's own c", "r")
    assert not await store.delete_conversation(ref("missing", ALICE))
    assert await store.delete_conversation(ref("c", ALICE))
    assert not await store.delete_conversation(ref("c", ALICE)), "gone already"
    assert await store.conversation(ref("c", ALICE)) is None
    assert (await store.history(ref("c", ALICE))).exchanges == []
    assert await store.version(ref("c", ALICE)) == 0
    assert [e.user for e in (await store.history(ref("c", BOB))).exchanges] == ["bob's own c"]
    again = await store.append(ref("c", ALICE), "afresh", "r")
    assert again.turn == 1, "the same id starts a new conversation"


# -- cuts (regenerate, edit) ----------------------------------------------------------------


async def test_an_exchange_stored_in_place_of_a_turn_cuts_the_conversation_there(
    store: ChatStore,
) -> None:
    for i in range(1, 5):
        await store.append(ref("c", ALICE), f"m{i}", f"r{i}")
    await store.append(ref("c", BOB), "bob's own c", "r")
    new = await store.append(ref("c", ALICE), "edited m2", "new r2", replaces_turn=2)
    assert (new.turn, new.generation, new.user) == (2, 1, "edited m2")
    history = (await store.history(ref("c", ALICE))).exchanges
    assert [(e.turn, e.user, e.generation) for e in history] == [(1, "m1", 0), new_row(new)]
    conversation = await store.conversation(ref("c", ALICE))
    assert conversation is not None
    assert conversation.exchanges == 2
    assert await store.position(ref("c", ALICE)) == (2, 1)
    after = await store.append(ref("c", ALICE), "m3 again", "r")
    assert (after.turn, after.generation) == (3, 1), "later exchanges keep the generation"
    again = await store.append(ref("c", ALICE), "m1 regenerated", "r", replaces_turn=1)
    assert (again.turn, again.generation) == (1, 2)
    assert [e.user for e in (await store.history(ref("c", ALICE))).exchanges] == ["m1 regenerated"]
    assert [e.user for e in (await store.history(ref("c", BOB))).exchanges] == ["bob's own c"]


def new_row(exchange: Exchange) -> tuple[int, str, int]:
    return exchange.turn, exchange.user, exchange.generation


async def test_a_cut_past_the_end_only_appends(store: ChatStore) -> None:
    """Another replica cut the conversation shorter meanwhile: nothing is left to erase, and
    the exchange comes after the last, gap-free."""
    await store.append(ref("c"), "m1", "r")
    new = await store.append(ref("c"), "m", "r", replaces_turn=5)
    assert (new.turn, [e.turn for e in (await store.history(ref("c"))).exchanges]) == (2, [1, 2])
    conversation = await store.conversation(ref("c"))
    assert conversation is not None
    assert conversation.exchanges == 2


async def test_a_holder_of_a_cut_turn_reads_from_the_cut(store: ChatStore) -> None:
    """What a client lacks, by where it stands (turn, generation): after a cut at or before
    its turn, everything from the cut; otherwise what follows its turn."""
    for i in range(1, 6):
        await store.append(ref("c"), f"m{i}", "r")
    assert [e.turn for e in await store.exchanges_after(ref("c"), 3, limit=10)] == [4, 5]
    await store.append(ref("c"), "new m3", "r", replaces_turn=3)
    await store.append(ref("c"), "new m4", "r")

    async def lacks(turn: int, generation: int, limit: int = 10) -> list[tuple[int, int]]:
        after = await store.exchanges_after(ref("c"), turn, limit=limit, generation=generation)
        return [(e.turn, e.generation) for e in after]

    assert await lacks(5, 0) == [(3, 1), (4, 1)], "its turns 3-5 were cut"
    assert await lacks(3, 0) == [(3, 1), (4, 1)], "its turn 3 was replaced"
    assert await lacks(5, 0, limit=1) == [(3, 1)]
    assert await lacks(2, 0) == [(3, 1), (4, 1)], "nothing it holds was cut"
    assert await lacks(3, 1) == [(4, 1)], "it has the new turn 3"
    assert await lacks(4, 1) == []
    assert await lacks(0, 0) == [(1, 0), (2, 0), (3, 1), (4, 1)]


async def test_cut_exchanges_are_no_longer_found(store: ChatStore) -> None:
    await store.append(ref("c"), "kept about lisbon", "r")
    await store.append(ref("c"), "doomed about zurich", "r")
    assert await found(store, "", "zurich") == ["c/2"]
    await store.append(ref("c"), "now about porto", "r", replaces_turn=2)
    assert await found(store, "", "zurich") == []
    assert await found(store, "", "lisbon") == ["c/1"], "what is left is still found"
    assert await found(store, "", "porto") == ["c/2"]


async def test_a_cut_keeps_the_conversations_title_and_instructions(store: ChatStore) -> None:
    await store.append(ref("c"), "first", "r")
    await store.rename_conversation(ref("c"), "Named")
    await store.configure_conversation(ref("c"), SettingsChange(system_prompt="Be brief."))
    await store.append(ref("c"), "second", "r")
    await store.append(ref("c"), "second again", "r", replaces_turn=2)
    conversation = await store.conversation(ref("c"))
    assert conversation is not None
    assert (conversation.title, conversation.system_prompt) == ("Named", "Be brief.")
    assert [e.user for e in (await store.history(ref("c"))).exchanges] == [
        "first",
        "second again",
    ]


async def test_the_feed_names_a_cut_conversation(store: ChatStore) -> None:
    await store.append(ref("c"), "m1", "r")
    changed = await listening(store)
    await store.append(ref("c"), "again", "r", replaces_turn=1)
    await eventually(lambda: ref("c") in changed)


# -- search -----------------------------------------------------------------------------


async def found(store: ChatStore, owner: str, query: str, limit: int = 20) -> list[str]:
    """What a search finds, as ``conversation id/turn``."""
    hits = await store.search(owner, query_words(query, most=16), limit=limit)
    return [f"{hit.exchange.conversation.id}/{hit.exchange.turn}" for hit in hits]


async def test_search_finds_exchanges_holding_every_word(store: ChatStore) -> None:
    await store.append(ref("trip", ALICE), "Plan a trip to Zürich", "Take the train.")
    await store.append(ref("trip", ALICE), "What about Lisbon?", "Lisbon is sunny; take a plane")
    await store.append(ref("food", ALICE), "A café near the TRAIN station", "Try the bakery.")
    assert sorted(await found(store, ALICE, "train")) == ["food/1", "trip/1"]
    assert await found(store, ALICE, "zurich train") == ["trip/1"], "message and reply"
    assert await found(store, ALICE, "CAFE") == ["food/1"], "case and accents folded"
    assert await found(store, ALICE, "lisbon plane") == ["trip/2"]
    assert await found(store, ALICE, "lisbon train") == [], "every word, not any"
    assert await found(store, ALICE, "trai") == [], "whole words"
    assert await found(store, ALICE, "nowhere") == []


async def test_a_hit_is_the_exchange_as_stored_with_its_conversations_title(
    store: ChatStore,
) -> None:
    stored = await store.append(ref("c", ALICE), "quokka facts", "They smile.", trace_id="cd" * 16)
    await store.rename_conversation(ref("c", ALICE), "Marsupials")
    await store.create_conversation(ref("untitled", ALICE), None)
    (hit,) = await store.search(ALICE, ["quokka"], limit=5)
    assert (hit.exchange, hit.title) == (stored, "Marsupials")


async def test_search_finds_only_the_owners_exchanges(store: ChatStore) -> None:
    await store.append(ref("c", ALICE), "alice's wombat", "r")
    await store.append(ref("c", BOB), "bob's wombat", "r")
    await store.append(ref("c"), "anybody's wombat", "r")
    alices = await store.search(ALICE, ["wombat"], limit=10)
    assert [(h.exchange.conversation, h.exchange.user) for h in alices] == [
        (ConversationRef(ALICE, "c"), "alice's wombat")
    ]
    assert [h.exchange.user for h in await store.search("", ["wombat"], limit=10)] == [
        "anybody's wombat"
    ]
    assert await store.search("key:carol", ["wombat"], limit=10) == []


async def test_search_ranks_the_exchange_most_about_the_words_first(store: ChatStore) -> None:
    filler = " ".join(f"filler{i}" for i in range(30))
    await store.append(ref("a", ALICE), f"otter {filler}", "r")
    await store.append(ref("b", ALICE), "otter otter otter", "about otters: otter")
    await store.append(ref("c", ALICE), f"otter {filler}", "r")
    assert await found(store, ALICE, "otter") == ["b/1", "c/1", "a/1"], "then newest first"
    assert await found(store, ALICE, "otter", limit=2) == ["b/1", "c/1"]


async def test_the_newest_matches_are_the_ones_ranked(
    store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word in thousands of exchanges is ranked among its newest CANDIDATES matches: the
    oldest here, the densest, is left out."""
    monkeypatch.setattr(sqlite, "CANDIDATES", 2)
    monkeypatch.setattr(postgres, "CANDIDATES", 2)
    await store.append(ref("a", ALICE), "koala koala koala", "koala")
    await store.append(ref("b", ALICE), "a koala and many other words here", "r")
    await store.append(ref("c", BOB), "bob's koala", "r")
    await store.append(ref("a", ALICE), "koala koala", "r")
    assert await found(store, ALICE, "koala", limit=5) == ["a/2", "b/1"]


async def test_a_deleted_conversation_is_no_longer_found(store: ChatStore) -> None:
    await store.append(ref("doomed", ALICE), "platypus", "r")
    await store.append(ref("kept", ALICE), "platypus too", "r")
    assert sorted(await found(store, ALICE, "platypus")) == ["doomed/1", "kept/1"]
    assert await store.delete_conversation(ref("doomed", ALICE))
    assert await found(store, ALICE, "platypus") == ["kept/1"]
    await store.append(ref("doomed", ALICE), "a fresh start", "r")
    assert await found(store, ALICE, "platypus") == ["kept/1"]
    assert await found(store, ALICE, "fresh") == ["doomed/1"]


@pytest.mark.parametrize(
    "query",
    ['"', "NEAR(a b) OR c*", "-x AND NOT y", "col:umn ^start", "a + b", "'single' \\ back"],
)
async def test_search_syntax_typed_by_a_user_is_only_words(store: ChatStore, query: str) -> None:
    words = query_words(query, most=16)
    await store.append(ref("c", ALICE), " ".join(words) or "nothing", "r")
    hits = await store.search(ALICE, words or ["nothing"], limit=5)
    assert [hit.exchange.turn for hit in hits] == [1]


# -- the change feed ---------------------------------------------------------------------


async def test_the_feed_names_each_conversation_a_commit_changed(store: ChatStore) -> None:
    changed = await listening(store)
    await asyncio.gather(
        store.append(ref("a", ALICE), "m", "r"), store.append(ref("b", BOB), "m", "r")
    )
    await eventually(lambda: len(changed) >= 2)
    assert set(changed) == {ConversationRef(ALICE, "a"), ConversationRef(BOB, "b")}


async def test_the_feed_names_each_conversation_deleted(store: ChatStore) -> None:
    removed: list[ConversationRef] = []
    store.add_removal_listener(removed.append)
    await listening(store)
    await store.append(ref("c", ALICE), "m", "r")
    assert await store.delete_conversation(ref("c", ALICE))
    await eventually(lambda: bool(removed))
    assert removed == [ConversationRef(ALICE, "c")]


async def test_the_feed_names_each_conversation_created_or_renamed(store: ChatStore) -> None:
    """Creations, renamings and changes of settings (which commit no exchange) are heard of,
    by catalogue listeners only; one that changed nothing is not. A deletion is not a
    renaming."""
    catalogued: list[ConversationRef] = []
    store.add_catalogue_listener(catalogued.append)
    changed = await listening(store)
    assert await store.create_conversation(ref("new", ALICE), None) is not None
    assert await store.create_conversation(ref("new", ALICE), "again") is None
    assert await store.rename_conversation(ref("new", ALICE), "Named") is not None
    assert await store.rename_conversation(ref("none-such", BOB), "Named") is None
    assert await store.configure_conversation(ref("new", ALICE), SettingsChange(model="m"))
    assert await store.configure_conversation(ref("none-such", BOB), SettingsChange()) is None
    assert await store.delete_conversation(ref("new", ALICE))
    # Something after them all: once its notification is here, theirs have come.
    assert await store.create_conversation(ref("last", BOB), None) is not None
    await eventually(lambda: ConversationRef(BOB, "last") in catalogued)
    assert catalogued == [
        ConversationRef(ALICE, "new"),
        ConversationRef(ALICE, "new"),
        ConversationRef(ALICE, "new"),
        ConversationRef(BOB, "last"),
    ]
    assert changed == []


async def test_a_conversations_settings_follow_every_change(store: ChatStore) -> None:
    """Read for every message (and remembered by SQLite, whose one writer is this process):
    each read after a change gives the change, whatever was read before it."""
    c = ref("c", ALICE)
    assert await store.conversation_settings(c) == NO_SETTINGS, "not created yet"
    await store.create_conversation(c, "t", SettingsChange(model="m1", system_prompt="Brief."))
    assert await store.conversation_settings(c) == ConversationSettings("m1", "Brief.")
    assert await store.conversation_settings(ref("c", BOB)) == NO_SETTINGS, "alice's only"
    await store.configure_conversation(c, SettingsChange(model="m2"))
    assert await store.conversation_settings(c) == ConversationSettings("m2", "Brief.")
    await store.rename_conversation(c, "renamed")
    assert await store.conversation_settings(c) == ConversationSettings("m2", "Brief.")
    await store.configure_conversation(c, SettingsChange(model=None, system_prompt=None))
    assert await store.conversation_settings(c) == NO_SETTINGS
    await store.configure_conversation(c, SettingsChange(system_prompt="Long."))
    assert await store.conversation_settings(c) == ConversationSettings(None, "Long.")
    assert await store.delete_conversation(c)
    assert await store.conversation_settings(c) == NO_SETTINGS, "gone with the conversation"
    await store.append(c, "again", "r")  # a first message creates it, with no settings
    assert await store.conversation_settings(c) == NO_SETTINGS
    await store.create_conversation(ref("d", ALICE), None, SettingsChange(model="md"))
    assert await store.conversation_settings(ref("d", ALICE)) == ConversationSettings("md", None)


def hold_reads(
    store: SQLiteChatStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """From now on each read of ``store`` reads, sets the first event, and returns only once
    the second is set: a change can commit between a read and its return."""
    read, release = asyncio.Event(), asyncio.Event()
    select = store._select

    async def read_then_wait(*args: Any, **kwargs: Any) -> list[Any]:
        rows = await select(*args, **kwargs)
        read.set()
        await release.wait()
        return rows

    monkeypatch.setattr(store, "_select", read_then_wait)
    return read, release


async def test_settings_read_while_they_change_are_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that got the old settings before a change committed, and returns after it,
    must not be remembered by SQLite over the change."""
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        c = ref("c", ALICE)
        await store.create_conversation(c, "t", SettingsChange(model="old"))
        store._settings.clear()  # as after a restart: the next read goes to the database
        read, release = hold_reads(store, monkeypatch)
        reading = asyncio.create_task(store.conversation_settings(c))
        await read.wait()
        await store.configure_conversation(c, SettingsChange(model="new"))
        release.set()
        assert await reading == ConversationSettings("old", None), "read before the change"
        assert await store.conversation_settings(c) == ConversationSettings("new", None)
    finally:
        await store.close()


async def test_no_conversation_means_version_0_with_no_read_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new chat's first message: SQLite found no conversation when it read the settings,
    so there are no exchanges either, and the history cache's version needs no read."""
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        c = ref("new", ALICE)
        assert await store.conversation_settings(c) == NO_SETTINGS
        select = store._select

        async def no_read(*args: Any, **kwargs: Any) -> list[Any]:
            raise AssertionError("read")

        monkeypatch.setattr(store, "_select", no_read)
        assert await store.version(c) == 0
        monkeypatch.setattr(store, "_select", select)
        stored = await store.append(c, "m", "r")
        assert await store.version(c) == stored.id
    finally:
        await store.close()


async def test_a_commit_during_the_settings_read_keeps_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings read found no conversation, but its first exchange committed before
    the read returned: the version is that exchange's, not 0."""
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        c = ref("new", ALICE)
        read, release = hold_reads(store, monkeypatch)
        reading = asyncio.create_task(store.conversation_settings(c))
        await read.wait()
        stored = await store.append(c, "m", "r")
        release.set()
        assert await reading == NO_SETTINGS
        assert await store.version(c) == stored.id
    finally:
        await store.close()
