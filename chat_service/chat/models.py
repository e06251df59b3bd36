"""The models a deployment offers: which a conversation or a message may ask for.

``CHAT_MODELS`` lists them when it is set. Otherwise the assistant is asked (an
OpenAI-compatible server's ``GET /v1/models``; the dummy offers itself), at most once per
``refresh_s``, by one caller at a time; when it cannot say, the last list it gave stands, or
the default model alone until it has given one. The default (``CHAT_MODEL``) is always
offered, first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from chat_service.assistant.base import Assistant, AssistantError

log = logging.getLogger(__name__)

REFRESH_S = 300.0


class ModelCatalogue:
    def __init__(
        self,
        assistant: Assistant,
        *,
        default: str,
        configured: Sequence[str] = (),
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self._assistant = assistant
        self._configured = _with_default(default, configured) if configured else None
        self._refresh_s = refresh_s
        self._clock = clock
        self._listed: tuple[str, ...] = (default,)
        self._listed_at: float | None = None
        self._lock = asyncio.Lock()

    async def offered(self) -> Sequence[str]:
        """The models offered right now, the default first."""
        if self._configured is not None:
            return self._configured
        async with self._lock:
            now = self._clock()
            if self._listed_at is None or now - self._listed_at >= self._refresh_s:
                try:
                    self._listed = _with_default(self.default, await self._assistant.models())
                except AssistantError as exc:
                    log.warning(
                        "the model server did not list its models; offering what it listed last",
                        extra={"error_type": exc.error_type},
                    )
                self._listed_at = now  # a failure too: asked again after the interval
            return self._listed

    async def offers(self, model: str) -> bool:
        return model in await self.offered()


def _with_default(default: str, models: Sequence[str]) -> tuple[str, ...]:
    return (default, *(model for model in dict.fromkeys(models) if model != default))
