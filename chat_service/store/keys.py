"""Conversations as the stores key them: the one place owner and id become one string.

Every principal has its own namespace of conversation ids: a conversation's storage key is
``owner/id``. Conversation ids cannot contain ``/`` (the API validates them), so a key
splits back at its last ``/`` whatever the owner's name holds; the anonymous owner's
namespace is empty and its keys are the bare ids, as they were before identities existed
(so the rows of earlier releases are the anonymous owner's). Nothing outside the store
builds or splits a key.
"""

from __future__ import annotations

from chat_service.chat.domain import ConversationRef


def storage_key(conversation: ConversationRef) -> str:
    owner, conversation_id = conversation.owner, conversation.id
    return f"{owner}/{conversation_id}" if owner else conversation_id


def conversation_of(key: str) -> ConversationRef:
    """The conversation :func:`storage_key` made ``key`` of."""
    owner, _, conversation_id = key.rpartition("/")
    return ConversationRef(owner, conversation_id)
