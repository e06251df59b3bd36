"""The PostgreSQL store's sealed text, read from outside the store: straight from its tables,
opened by the format README documents (AES-256-GCM; ``0x01 || 12-byte nonce || ciphertext
and tag``; the associated data ``0x01`` and the field's name), not by the store's own code."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def open_sealed(key: bytes, sealed: bytes, field: str) -> str:
    """The text of a sealed value; ``cryptography``'s InvalidTag when the key or field is
    not the one it was sealed with."""
    assert sealed[:1] == b"\x01", f"unknown format {sealed[:1].hex()}"
    nonce, ciphertext = sealed[1:13], sealed[13:]
    return AESGCM(key).decrypt(nonce, ciphertext, b"\x01" + field.encode()).decode()


@dataclass(frozen=True)
class StoredExchange:
    id: int
    conversation_id: str
    user: str
    ai: str
    trace_id: str | None


async def conversation_key(url: str, conversation_id: str) -> bytes | None:
    conn = await asyncpg.connect(url)
    try:
        key: bytes | None = await conn.fetchval(
            "SELECT key FROM conversation_keys WHERE conversation_id = $1", conversation_id
        )
        return key
    finally:
        await conn.close()


async def stored_exchanges(url: str) -> list[StoredExchange]:
    """Every exchange in the database, oldest first, its text opened with its key."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT e.id, e.conversation_id, e.user_sealed, e.ai_sealed, e.trace_id, k.key "
            "FROM exchanges e JOIN conversation_keys k USING (conversation_id) ORDER BY e.id"
        )
    finally:
        await conn.close()
    return [
        StoredExchange(
            row["id"],
            row["conversation_id"],
            open_sealed(row["key"], row["user_sealed"], "user"),
            open_sealed(row["key"], row["ai_sealed"], "ai"),
            row["trace_id"],
        )
        for row in rows
    ]
