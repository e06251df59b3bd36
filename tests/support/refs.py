"""Conversations as tests name them: ``ref("c")`` is the anonymous owner's ``c``, the one a
request without credentials reaches (``ref("c", "key:alice")``: alice's)."""

from __future__ import annotations

from chat_service.chat.domain import ConversationRef


def ref(conversation_id: str, owner: str = "") -> ConversationRef:
    return ConversationRef(owner, conversation_id)
