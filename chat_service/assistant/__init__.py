"""Assistants: the :class:`Assistant` protocol and the implementations CHAT_ASSISTANT names."""

from chat_service.assistant.base import Assistant, AssistantError, Reply
from chat_service.assistant.dummy import DummyAssistant
from chat_service.config import Settings


def create_assistant(settings: Settings) -> Assistant:
    """Build the assistant CHAT_ASSISTANT names (Settings has already validated it)."""
    if settings.assistant == "dummy":
        return DummyAssistant(latency_ms=settings.assistant_latency_ms)
    raise ValueError(f"unknown assistant {settings.assistant!r}")


__all__ = ["Assistant", "AssistantError", "DummyAssistant", "Reply", "create_assistant"]
