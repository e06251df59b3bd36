"""Assistants: the :class:`Assistant` protocol and the implementations CHAT_ASSISTANT names."""

from collections.abc import Callable

from chat_service.assistant.base import (
    Assistant,
    AssistantError,
    Completion,
    ReplyChunk,
)
from chat_service.assistant.dummy import DummyAssistant
from chat_service.config import Settings


def create_assistant(
    settings: Settings, *, on_retry: Callable[[], None] | None = None
) -> Assistant:
    """Build the assistant CHAT_ASSISTANT names (Settings has already validated it);
    ``on_retry`` is called for every retried model request."""
    if settings.assistant == "openai":
        # Imported here: the SDK is loaded only when a model is used.
        from chat_service.assistant.openai import OpenAIAssistant

        assert settings.model is not None
        assert settings.openai_api_key is not None
        return OpenAIAssistant(
            model=settings.model,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            system_prompt=settings.system_prompt,
            max_output_tokens=settings.max_output_tokens,
            timeout_s=settings.model_timeout_s,
            max_retries=settings.model_max_retries,
            # Every call the model slots let through has a connection of its own.
            max_connections=settings.model_max_concurrency,
            on_retry=on_retry,
        )
    return DummyAssistant(
        latency_ms=settings.assistant_latency_ms, token_ms=settings.assistant_token_ms
    )


__all__ = [
    "Assistant",
    "AssistantError",
    "Completion",
    "DummyAssistant",
    "ReplyChunk",
    "create_assistant",
]
