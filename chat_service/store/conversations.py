"""Conversations as their owners see them, and how an owner's ids become the store's.

Every principal has its own namespace of conversation ids: the store keys a conversation
by ``owner/id``. Conversation ids cannot contain ``/`` (the API validates them), so the
key splits back at its last ``/`` whatever the owner's name holds; the anonymous owner's
namespace is empty and its keys are the bare ids, as they were before identities existed.
Nothing outside this module builds or splits a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TITLE_FROM_MESSAGE_CHARS = 60
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of one owner; ``title`` is None until it has one."""

    id: str
    title: str | None
    created_at: str
    updated_at: str
    exchanges: int


@dataclass(frozen=True, slots=True)
class ConversationCursor:
    """Where a page of an owner's conversations (most recently active first) ends."""

    updated_at: str
    id: str


def conversation_key(owner: str, conversation_id: str) -> str:
    return f"{owner}/{conversation_id}" if owner else conversation_id


def split_conversation_key(key: str) -> tuple[str, str]:
    """``(owner, conversation_id)`` of a key :func:`conversation_key` made."""
    owner, _, conversation_id = key.rpartition("/")
    return owner, conversation_id


def title_from_message(message: str) -> str | None:
    """A conversation's default title: the start of its first message, on one line, cut
    at a word boundary when there is one near the limit; None when no printable text is
    left (control characters go, as they may not be in a title)."""
    text = " ".join(_CONTROL.sub(" ", message).split())
    if not text:
        return None
    if len(text) <= TITLE_FROM_MESSAGE_CHARS:
        return text
    cut = text[: TITLE_FROM_MESSAGE_CHARS - 1]
    space = cut.rfind(" ")  # the text has no runs of spaces: what precedes it is a word
    if space >= TITLE_FROM_MESSAGE_CHARS // 2:
        cut = cut[:space]
    return cut + "…"
