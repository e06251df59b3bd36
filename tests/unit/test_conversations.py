"""``/chat/conversations``: listing, creating, renaming and deleting, on both stores.

Isolation between principals has its own matrix (tests/security/test_isolation.py); here
every request is the anonymous principal's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.api.keys import CHAT
from chat_service.chat.domain import title_from_message
from chat_service.config import Settings
from chat_service.store.postgres import PostgresChatStore
from chat_service.store.search_terms import search_key
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.binaries import in_ci
from tests.support.postgres import PostgresNotFound, PostgresServer
from tests.support.refs import ref
from tests.support.sealed import conversation_key
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
BAD_CURSOR = "Query parameter 'before' must be a cursor from a previous page's Link."
MARKER = "zq-erase-me-8c1d"
# One word, as the search index holds words (the marker is four of them). The index stores
# a word after the one before it as the length of their common start and the rest: its end
# is in the file whatever precedes it.
WORD = "xylophonist8c1d"
WORD_END = WORD[-10:].encode()
NOT_FOUND = {"status": "error", "message": "Conversation not found."}
FORMAT_CHARACTER = "Field 'title' must not contain invisible format characters (found U+{})."


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


async def create(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/chat/conversations", json=body if body else None)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    assert response.headers["Location"] == f"/chat/conversations/{created['id']}"
    return created


async def send(client: Client, conversation: str, message: str) -> None:
    response = await client.post(
        "/chat/message", json={"message": message, "conversation_id": conversation}
    )
    assert response.status == 200, await response.text()


async def listed(client: Client, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/chat/conversations{query}")
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = await response.json()
    return items


async def test_a_new_conversation_is_empty_untitled_and_has_a_server_chosen_id(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    assert await listed(client) == []
    created = await create(client)
    assert re.fullmatch(r"[0-9a-f]{32}", created["id"])
    assert created["title"] is None
    assert created["exchanges"] == 0
    assert TIMESTAMP.fullmatch(created["created_at"])
    assert created["updated_at"] == created["created_at"]
    assert (await create(client))["id"] != created["id"]
    fetched = await client.get(f"/chat/conversations/{created['id']}")
    assert (fetched.status, await fetched.json()) == (200, created)


async def test_a_given_title_is_trimmed_to_one_line_and_kept_after_messages(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    created = await create(client, title="  Trip \u2003 to   Lisbon ")
    assert created["title"] == "Trip to Lisbon"
    await send(client, created["id"], "What should I pack?")
    [item] = await listed(client)
    assert (item["id"], item["title"], item["exchanges"]) == (created["id"], "Trip to Lisbon", 1)
    assert item["updated_at"] >= item["created_at"]


async def test_an_untitled_conversation_is_titled_by_its_first_message(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    created = await create(client)
    first = "Explain   the difference between\nprocesses and threads in an operating system"
    await send(client, created["id"], first)
    await send(client, created["id"], "And green threads?")
    [item] = await listed(client)
    assert item["title"] == "Explain the difference between processes and threads in an…"
    assert item["exchanges"] == 2


async def test_a_first_message_keeps_its_format_characters_but_its_title_does_not(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    message = "pay \u2067invoice\u202efdp.exe\u2069 today"
    await send(client, "spoof", message)
    [item] = await listed(client)
    assert item["title"] == "pay invoicefdp.exe today"
    history = await client.get("/chat/history?conversation_id=spoof")
    assert [exchange["user"] for exchange in await history.json()] == [message]


async def test_titles_keep_the_joiners_that_emoji_and_scripts_are_written_with(
    make_client: MakeClient,
) -> None:
    """U+200D builds one emoji from several (an astronaut with a skin tone), U+200C is
    spelling in Persian: both are format characters, and both are text."""
    client = await make_client()
    astronaut = "\U0001f469\U0001f3fd\u200d\U0001f680"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # mi-khaham
    created = await client.post("/chat/conversations", json={"title": f"{astronaut} notes"})
    assert created.status == 201
    assert (await created.json())["title"] == f"{astronaut} notes"
    await send(client, "fa", persian)
    titles = {item["id"]: item["title"] for item in await listed(client)}
    assert titles["fa"] == persian


async def test_posting_to_a_new_id_creates_the_conversation(make_client: MakeClient) -> None:
    client = await make_client()
    await send(client, "notes", "Short one")
    [item] = await listed(client)
    assert (item["id"], item["title"], item["exchanges"]) == ("notes", "Short one", 1)


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("hello", "hello"),
        ("  spaced\t\tout  ", "spaced out"),
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "…"),  # no space to cut at
        ("word " * 20, "word word word word word word word word word word word…"),
        # A space at index 30 is still a boundary to cut at; one at 29 is too early.
        ("a" * 30 + " " + "b" * 40, "a" * 30 + "…"),
        ("a" * 29 + " " + "b" * 40, "a" * 29 + " " + "b" * 29 + "…"),
        ("tab\tand\x01bell\x85", "tab and bell"),  # no control character in a title
        ("\x1c\x1f", None),  # nothing printable: no title yet
        # Format characters go too, without a space: they were invisible where they stood.
        ("invoice\u202eexe.txt", "invoiceexe.txt"),  # a right-to-left override
        ("zero\u200bwidth \u2066isolated\u2069", "zerowidth isolated"),
        ("\ufeffbom \u00adsoft \U000e0067tag", "bom soft tag"),
        ("\u200e\u200f\u2067\u2069", None),  # nothing visible: no title yet
        ("crème brûlée", "crème brûlée"),
        ("café\n\u202eau lait", "café au lait"),  # a line break does not hide an override
        # Long messages: the same title, wherever the visible text starts.
        ("word " * 800, "word word word word word word word word word word word…"),
        (" \n" * 300 + "late start", "late start"),
        ("\u200b" * 1000 + "hidden start", "hidden start"),
        ("\u200b" * 1000, None),
    ],
)
def test_default_titles(message: str, title: str | None) -> None:
    assert title_from_message(message) == title


async def test_the_most_recently_active_come_first(make_client: MakeClient) -> None:
    client = await make_client()
    ids = [(await create(client, title=name))["id"] for name in ("a", "b", "c")]
    await asyncio.sleep(0.002)  # timestamps have millisecond resolution
    await send(client, ids[0], "back to a")
    assert [item["title"] for item in await listed(client)] == ["a", "c", "b"]


async def test_pages_follow_their_links_without_gaps_or_repeats(make_client: MakeClient) -> None:
    client = await make_client()
    made = {(await create(client, title=f"t{n}"))["id"] for n in range(5)}
    seen: list[str] = []
    path = "/chat/conversations?limit=2"
    sizes = []
    while path:
        response = await client.get(path)
        assert response.status == 200
        page = await response.json()
        sizes.append(len(page))
        seen += [item["id"] for item in page]
        link = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        path = link.group(1) if link else ""
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=0", "Query parameter 'limit' must be a positive integer."),
        ("?limit=101", "Query parameter 'limit' must be at most 100."),
        (
            "?before=nonsense",
            "Query parameter 'before' must be a cursor from a previous page's Link.",
        ),
        (
            "?before=WzEsMl0",
            "Query parameter 'before' must be a cursor from a previous page's Link.",
        ),
    ],
)
async def test_bad_list_queries_are_refused(
    make_client: MakeClient, query: str, message: str
) -> None:
    client = await make_client()
    response = await client.get(f"/chat/conversations{query}")
    assert (response.status, await response.json()) == (
        400,
        {"status": "error", "message": message},
    )


async def test_renaming(make_client: MakeClient) -> None:
    client = await make_client()
    created = await create(client, title="before")
    renamed = await client.patch(f"/chat/conversations/{created['id']}", json={"title": "after"})
    assert renamed.status == 200
    assert await renamed.json() == {**created, "title": "after"}
    assert [item["title"] for item in await listed(client)] == ["after"]
    missing = await client.patch("/chat/conversations/nope", json={"title": "x"})
    assert (missing.status, await missing.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Give at least one of 'title', 'model' and 'system_prompt'."),
        ({"title": None}, "Field 'title' must be a string."),
        ({"title": 5}, "Field 'title' must be a string."),
        ({"title": ""}, "Field 'title' must be 1-200 characters, not blank."),
        ({"title": " \n "}, "Field 'title' must be 1-200 characters, not blank."),
        ({"title": "\u3000\ufeff"}, "Field 'title' must be 1-200 characters, not blank."),
        ({"title": "x" * 201}, "Field 'title' must be 1-200 characters, not blank."),
        ({"title": "bell\x07"}, "Field 'title' must be text without control characters."),
        ({"title": "line\nbreak"}, "Field 'title' must be text without control characters."),
        ({"title": "c1\x85"}, "Field 'title' must be text without control characters."),
        ({"title": "\ud800"}, "Field 'title' must be text without control characters."),
        # Unicode format characters (category Cf): invisible, yet they change what is shown.
        ({"title": "invoice\u202eexe.txt"}, FORMAT_CHARACTER.format("202E")),
        ({"title": "zero\u200bwidth"}, FORMAT_CHARACTER.format("200B")),
        ({"title": "\u2066isolated\u2069"}, FORMAT_CHARACTER.format("2066")),
        ({"title": "\ufeffbom"}, FORMAT_CHARACTER.format("FEFF")),
        ({"title": "soft\u00adhyphen"}, FORMAT_CHARACTER.format("00AD")),
        ({"title": "tag\U000e0067"}, FORMAT_CHARACTER.format("E0067")),
    ],
)
async def test_bad_titles_are_refused(
    make_client: MakeClient, body: dict[str, Any], message: str
) -> None:
    client = await make_client()
    created = await create(client, title="kept")
    response = await client.patch(f"/chat/conversations/{created['id']}", json=body)
    assert (response.status, await response.json()) == (
        400,
        {"status": "error", "message": message},
    )
    if "title" in body:
        refused = await client.post("/chat/conversations", json=body)
        assert refused.status == 400, "creating checks a title the same way"
    assert [item["title"] for item in await listed(client)] == ["kept"]


async def test_a_title_of_exactly_200_characters_is_accepted(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await create(client, title="y" * 200))["title"] == "y" * 200


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_body_bytes=1024)
    response = await client.post("/chat/conversations", data=b'{"title": "' + b"x" * 2000 + b'"}')
    assert (response.status, await response.json()) == (
        413,
        {"status": "error", "message": "Request body is larger than 1024 bytes."},
    )


async def test_each_principal_lists_its_own_under_the_ids_it_used(
    make_client: MakeClient,
) -> None:
    alice = {"Authorization": "Bearer alice-key-0123456789"}
    client = await make_client(api_keys=("alice:alice-key-0123456789",))
    response = await client.post(
        "/chat/message", json={"message": "hi", "conversation_id": "a/b"}, headers=alice
    )
    assert response.status == 400, "no id holds the separator of owner and id"
    await client.post(
        "/chat/message", json={"message": "hi", "conversation_id": "shared"}, headers=alice
    )
    response = await client.get("/chat/conversations", headers=alice)
    assert [item["id"] for item in await response.json()] == ["shared"]


async def test_an_id_that_cannot_exist_is_a_bad_request(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.delete("/chat/conversations/-dash")
    assert response.status == 400


async def test_deleting_erases_the_conversation_and_its_history(make_client: MakeClient) -> None:
    client = await make_client()
    kept = await create(client, title="kept")
    doomed = await create(client, title="doomed")
    await send(client, doomed["id"], "forget me")
    await send(client, kept["id"], "remember me")
    history = await client.get(f"/chat/history?conversation_id={doomed['id']}")
    assert len(await history.json()) == 1  # cached now: the deletion must reach the cache
    deleted = await client.delete(f"/chat/conversations/{doomed['id']}")
    assert (deleted.status, await deleted.read()) == (204, b"")
    gone = await client.get(f"/chat/conversations/{doomed['id']}")
    assert (gone.status, await gone.json()) == (404, NOT_FOUND)
    history = await client.get(f"/chat/history?conversation_id={doomed['id']}")
    assert await history.json() == []
    assert [item["title"] for item in await listed(client)] == ["kept"]
    again = await client.delete(f"/chat/conversations/{doomed['id']}")
    assert (again.status, await again.json()) == (404, NOT_FOUND)
    # The same id can start over, from turn 1.
    await send(client, doomed["id"], "anew")
    [fresh] = [item for item in await listed(client) if item["id"] == doomed["id"]]
    assert (fresh["title"], fresh["exchanges"]) == ("anew", 1)


async def test_a_deletion_waits_for_a_reply_being_written(make_client: MakeClient) -> None:
    """The reply in flight is stored, then erased with the rest: it does not bring the
    conversation back after the deletion."""
    client = await make_client(assistant_latency_ms=300)
    created = await create(client)
    await send(client, created["id"], "first")
    sending = asyncio.ensure_future(send(client, created["id"], "in flight"))
    await asyncio.sleep(0.1)  # the second message is waiting for the model
    deleted = await client.delete(f"/chat/conversations/{created['id']}")
    assert deleted.status == 204
    await sending
    gone = await client.get(f"/chat/conversations/{created['id']}")
    assert gone.status == 404
    assert await listed(client) == []


async def test_deleting_ends_the_conversations_live_streams(make_client: MakeClient) -> None:
    client = await make_client()
    doomed = await create(client)
    other = await create(client)
    streams = {
        name: await client.get(f"/chat/events?conversation_id={conversation['id']}")
        for name, conversation in (("doomed", doomed), ("other", other))
    }
    live = client.app[CHAT]
    for _ in range(500):
        if live.followers == 2:
            break
        await asyncio.sleep(0.01)
    assert live.followers == 2
    # On PostgreSQL a deletion reaches the streams by a notification, heard once the replica's
    # listening connection is up, which readiness waits for. Nothing tells an empty
    # conversation deleted before then from one never created, so the test waits for it too.
    for _ in range(500):
        if (await client.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.01)
    assert (await client.delete(f"/chat/conversations/{doomed['id']}")).status == 204
    async with asyncio.timeout(5):
        rest = await streams["doomed"].content.read()
    assert b"event:" not in rest
    assert live.followers == 1, "the other conversation's stream goes on"
    streams["other"].close()


def database_bytes(path: Path) -> bytes:
    """The database file and its log, as they are on disk."""
    return b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )


async def test_deleted_text_is_gone_from_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await SQLiteChatStore.open(path)
    try:
        for n in range(3):
            await store.append(
                ref("doomed"), f"{MARKER} question {n}", f"{MARKER} {WORD} answer {n}"
            )
            await store.append(ref("kept"), f"kept question {n}", "kept answer")
        await store.rename_conversation(ref("doomed"), f"{MARKER} title")
        assert MARKER.encode() in database_bytes(path), "the text was on disk to begin with"
        assert len(await store.search("", [WORD], limit=5)) == 3, "found by search"
        on_disk = database_bytes(path)
        assert on_disk.count(WORD_END) > 3, "in the index's pages as well as the 3 texts"
        assert await store.delete_conversation(ref("doomed"))
        on_disk = database_bytes(path)
        assert MARKER.encode() not in on_disk
        assert WORD_END not in on_disk, "nor in the search index's pages"
        assert await store.search("", [WORD], limit=5) == []
        assert b"kept question 2" in on_disk
        assert len(await store.search("", ["kept"], limit=5)) == 3
        assert [e.user for e in (await store.history(ref("kept"))).exchanges][
            -1
        ] == "kept question 2"
    finally:
        await store.close()
    assert MARKER.encode() not in database_bytes(path)


async def test_cut_text_is_gone_from_the_sqlite_files(tmp_path: Path) -> None:
    """An edit or a regeneration erases what it cuts the way a deletion does."""
    path = tmp_path / "chat.db"
    store = await SQLiteChatStore.open(path)
    try:
        await store.append(ref("c"), "kept question", "kept answer")
        for n in range(3):
            await store.append(ref("c"), f"{MARKER} question {n}", f"{MARKER} {WORD} answer {n}")
        assert len(await store.search("", [WORD], limit=5)) == 3, "found by search"
        assert database_bytes(path).count(WORD_END) > 3, "in the index's pages too"
        new = await store.append(ref("c"), "edited question", "new answer", replaces_turn=2)
        assert new.turn == 2
        on_disk = database_bytes(path)
        assert MARKER.encode() not in on_disk
        assert WORD_END not in on_disk, "nor in the search index's pages"
        assert await store.search("", [WORD], limit=5) == []
        assert b"kept question" in on_disk
        assert b"edited question" in on_disk
    finally:
        await store.close()
    assert MARKER.encode() not in database_bytes(path)


@pytest.fixture(scope="module")
def wal_removing_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own, whose data directory holds only this module's data,
    set as README's erasure section asks of production: WAL segments a checkpoint no longer
    needs are removed (``wal_recycle=off``), not renamed for reuse with their content."""
    try:
        server = PostgresServer(settings={"wal_recycle": "off"})
    except PostgresNotFound as missing:
        if in_ci():
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(str(missing))
    try:
        yield server.start()
    finally:
        server.close()


async def test_deleted_text_is_gone_from_the_postgresql_files(
    wal_removing_server: PostgresServer,
) -> None:
    """Every file of the data directory (tables, indexes, WAL, statistics) is searched, as
    someone holding a copy of it would. The text never reaches them in the clear; the key
    that opens it is there until the conversation is deleted, and gone from the table files
    once the shredder has run, and from the WAL after the next checkpoint."""
    server = wal_removing_server
    url = server.create_database("erasure")
    store = await PostgresChatStore.open(url, shred_interval_s=0.2)
    try:
        # "kept" first: the doomed key's row is then the last of its page, which VACUUM
        # alone would leave in the page's free space.
        for n in range(3):
            await store.append(ref("kept"), f"kept question {n}", "kept answer")
            await store.append(
                ref("doomed"), f"{MARKER} question {n}", f"{MARKER} {WORD} answer {n}"
            )
        await store.rename_conversation(ref("doomed"), f"{MARKER} title")
        assert len(await store.search("", [WORD], limit=5)) == 3, "found by search"
        key = await conversation_key(url, "doomed")
        assert key is not None
        assert any(f.startswith("pg_wal/") for f in server.files_contain(key)), "its WAL record"
        server.execute("ANALYZE", "erasure")  # statistics sampled, as autovacuum would
        server.execute("CHECKPOINT")
        assert server.files_contain(MARKER.encode()) == []
        assert server.files_contain(b"kept question") == [], "no text is ever in the clear"
        assert server.files_contain(WORD_END) == [], "nor a word of it, in the search index"
        keys_file = server.execute("SELECT pg_relation_filepath('conversation_keys')", "erasure")
        # The search key, which tests a word against the terms, is kept in the key's row.
        key_of_terms = search_key(key)
        for secret in (key, key_of_terms):
            tables = [f for f in server.files_contain(secret) if not f.startswith("pg_wal/")]
            assert tables == [keys_file.strip()], "the key's row, and no statistics of it"

        assert await store.delete_conversation(ref("doomed"))
        assert await store.search("", [WORD], limit=5) == []
        for _ in range(200):  # the shredder's next look, a quarter interval later
            if store.shredder.rewrites:
                break
            await asyncio.sleep(0.05)
        assert store.shredder.rewrites == 1
        server.execute("CHECKPOINT")  # the old table file is removed at a checkpoint
        for secret in (key, key_of_terms):
            assert [f for f in server.files_contain(secret) if not f.startswith("pg_wal/")] == []
        server.execute("SELECT pg_switch_wal()")
        server.execute("CHECKPOINT")
        assert server.files_contain(key) == []
        assert server.files_contain(key_of_terms) == []
        assert server.files_contain(WORD_END) == []
        assert await conversation_key(url, "doomed") is None
        assert [e.user for e in (await store.history(ref("kept"))).exchanges][
            -1
        ] == "kept question 2"
    finally:
        await store.close()


async def test_cut_text_is_gone_from_the_postgresql_files(
    wal_removing_server: PostgresServer,
) -> None:
    """A cut re-keys the conversation (store/postgres_cut.py): what is left is sealed under
    a new key, and the old one, which opens the cut text's every copy, leaves the files as a
    deleted conversation's key does."""
    server = wal_removing_server
    url = server.create_database("cut")
    store = await PostgresChatStore.open(url, shred_interval_s=0.2)
    try:
        await store.append(ref("c"), "kept question", "kept answer")
        for n in range(3):
            await store.append(ref("c"), f"{MARKER} question {n}", f"{MARKER} {WORD} answer {n}")
        await store.rename_conversation(ref("c"), "kept title")
        old_key = await conversation_key(url, "c")
        assert old_key is not None
        assert len(await store.search("", [WORD], limit=5)) == 3, "found by search"
        new = await store.append(ref("c"), "edited question", "new answer", replaces_turn=2)
        assert new.turn == 2
        new_key = await conversation_key(url, "c")
        assert new_key is not None
        assert new_key != old_key
        assert await store.search("", [WORD], limit=5) == []
        assert len(await store.search("", ["kept"], limit=5)) == 1, "terms under the new key"
        conversation = await store.conversation(ref("c"))
        assert conversation is not None
        assert conversation.title == "kept title"
        assert [e.user for e in (await store.history(ref("c"))).exchanges] == [
            "kept question",
            "edited question",
        ]
        for _ in range(200):  # the shredder's next look, a quarter interval later
            if store.shredder.rewrites:
                break
            await asyncio.sleep(0.05)
        assert store.shredder.rewrites == 1
        server.execute("CHECKPOINT")
        for secret in (old_key, search_key(old_key)):
            assert [f for f in server.files_contain(secret) if not f.startswith("pg_wal/")] == []
        server.execute("SELECT pg_switch_wal()")
        server.execute("CHECKPOINT")
        assert server.files_contain(old_key) == []
        assert server.files_contain(search_key(old_key)) == []
        assert server.files_contain(MARKER.encode()) == [], "never in the clear"
    finally:
        await store.close()
