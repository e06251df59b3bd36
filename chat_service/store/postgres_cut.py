"""Cutting a conversation at a turn on PostgreSQL, inside the batch that stores what
replaces it (postgres.py's group commit; regenerate and edit).

Deleting rows does not erase them from PostgreSQL's files (sealing.py), and the cut
conversation lives on, key and all: the cut exchanges' ciphertext could still be opened with
it. So a cut re-keys the conversation: what is left of it (its earlier exchanges, their
search terms, its title and instructions) is sealed again under a new key, and the old key
is deleted like a deleted conversation's, taken out of the key table's files by the shredder
within its interval (postgres_shredding.py). Every copy of the cut text is then ciphertext
under a key no one has. Re-keying costs one read and one write of the exchanges left: a cut
is rare, and a conversation bounded.

The key's row is locked for update first: a batch of another replica writing to the
conversation holds it for key share until it commits, and one that comes after waits for
this one, then reads the new key. A rename or change of settings takes the same share, so
the title and instructions read here stay as read until the commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.store.postgres_migrations import terms_literal
from chat_service.store.postgres_shredding import REQUEST, AnyConnection
from chat_service.store.sealing import AI, PROMPT, TITLE, USER, new_key, seal, unseal
from chat_service.store.search_terms import keyed_terms, search_key

_RESEAL_EXCHANGES = """
UPDATE exchanges AS e SET user_sealed = r.u, ai_sealed = r.a, search_terms = r.st::bigint[]
FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::text[]) AS r (id, u, a, st)
WHERE e.id = r.id
"""


@dataclass(frozen=True, slots=True)
class Cut:
    """A conversation cut, before the batch counts it: its new key (and the search key
    derived from it), and its title and instructions sealed under it (None where it has
    none), for the batch's count to write."""

    key: bytes
    search_key: bytes
    title: bytes | None
    system_prompt: bytes | None


async def cut(conn: AnyConnection, conversation_id: str, from_turn: int) -> Cut:
    """Erase the conversation's exchanges from ``from_turn`` on and seal what is left under
    a new key (see the module's docstring); the conversation's row is the caller's to
    update. The key's row must exist (the batch made it when it had none)."""
    old: bytes = await conn.fetchval(
        "SELECT key FROM conversation_keys WHERE conversation_id = $1 FOR UPDATE",
        conversation_id,
    )
    await conn.execute(
        "DELETE FROM exchanges WHERE conversation_id = $1 AND turn >= $2",
        conversation_id,
        from_turn,
    )
    fresh = new_key()
    terms_key = search_key(fresh)
    rows = await conn.fetch(
        "SELECT id, user_sealed, ai_sealed FROM exchanges WHERE conversation_id = $1",
        conversation_id,
    )
    if rows:
        texts = [
            (unseal(old, row["user_sealed"], USER), unseal(old, row["ai_sealed"], AI))
            for row in rows
        ]
        await conn.execute(
            _RESEAL_EXCHANGES,
            [row["id"] for row in rows],
            [seal(fresh, user, USER) for user, _ in texts],
            [seal(fresh, ai, AI) for _, ai in texts],
            [terms_literal(keyed_terms(terms_key, pair)) for pair in texts],
        )
    sealed = await conn.fetchrow(
        "SELECT title_sealed, system_prompt_sealed FROM conversations WHERE id = $1",
        conversation_id,
    )
    await conn.execute(
        "UPDATE conversation_keys SET key = $2, search_key = $3 WHERE conversation_id = $1",
        conversation_id,
        fresh,
        terms_key,
    )
    await conn.execute(REQUEST)  # the old key out of the table's files, like a deletion's
    if sealed is None:  # first written to by this batch: nothing sealed yet
        return Cut(key=fresh, search_key=terms_key, title=None, system_prompt=None)
    return Cut(
        key=fresh,
        search_key=terms_key,
        title=_reseal(sealed["title_sealed"], old, fresh, TITLE),
        system_prompt=_reseal(sealed["system_prompt_sealed"], old, fresh, PROMPT),
    )


def _reseal(value: bytes | None, old: bytes, fresh: bytes, field: bytes) -> bytes | None:
    return None if value is None else seal(fresh, unseal(old, value, field), field)
