"""Conversation text sealed with the conversation's own key (PostgreSQL's crypto-shredding).

PostgreSQL never erases in place: a deleted row stays in the table's files until its page is
rewritten, and in the write-ahead log, its archives, replicas and backups for as long as they
are kept. So the PostgreSQL store never gives it a conversation's text in the clear: each
conversation has a random 256-bit key, and every message, reply and title is sealed with it
(AES-256-GCM) before it is written. Deleting a conversation deletes its key; every copy of its
text that PostgreSQL (or anyone) kept is then ciphertext that no one can open.

A sealed value is ``version (1 byte) || nonce (12 bytes) || ciphertext and tag``. The nonce is
random (a conversation would need billions of messages before a repeat became likely), and the
field it was sealed for (message, reply, title) is authenticated with it, so a value cannot be
moved to another field, or opened with another conversation's key, without being refused.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chat_service.store.base import StoreError

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"

# The fields a value is sealed for (its associated data).
USER = b"user"
AI = b"ai"
TITLE = b"title"
PROMPT = b"system_prompt"


def new_key() -> bytes:
    """A conversation's key: 256 bits from the operating system's random source."""
    return os.urandom(KEY_BYTES)


def seal(key: bytes, text: str, field: bytes) -> bytes:
    """``text`` sealed with ``key`` for ``field``."""
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, text.encode(), VERSION + field)


def unseal(key: bytes, sealed: bytes, field: bytes) -> str:
    """The text of a value :func:`seal` made; StoreError if it was not sealed with ``key``
    for ``field``, or has been altered."""
    version, nonce, ciphertext = (
        sealed[:1],
        sealed[1 : 1 + NONCE_BYTES],
        sealed[1 + NONCE_BYTES :],
    )
    if version != VERSION:
        raise StoreError(f"sealed text of unknown format {version.hex() or 'empty'}")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, version + field).decode()
    # ValueError: a value cut short, whose nonce is not whole.
    except (InvalidTag, ValueError):
        raise StoreError("sealed text does not open with its conversation's key") from None
