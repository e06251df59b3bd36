"""The event loop the service runs on (CHAT_EVENT_LOOP).

uvloop (the ``speedups`` extra, which the image installs) runs the same asyncio code with less
overhead per request, so ``auto`` takes it whenever it can be imported; without it the service
runs on asyncio's own loop, unchanged. An operator who asks for ``uvloop`` by name is told at
start-up when it is missing, rather than left with a slower service and no sign of why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from chat_service.config import ConfigError


@dataclass(frozen=True, slots=True)
class EventLoopChoice:
    """What to run on: ``name`` is what the start-up log line reports."""

    name: str
    new_loop: Callable[[], asyncio.AbstractEventLoop]


def choose_event_loop(setting: str) -> EventLoopChoice:
    """The loop for ``setting`` (``auto``, ``asyncio`` or ``uvloop``, as Settings validated it).

    Raises ConfigError for ``uvloop`` when it cannot be imported.
    """
    if setting != "asyncio":
        try:
            import uvloop
        except ImportError:
            if setting == "uvloop":
                raise ConfigError(
                    "CHAT_EVENT_LOOP=uvloop but uvloop is not installed: "
                    "pip install 'chat-service[speedups]', or set CHAT_EVENT_LOOP=auto"
                ) from None
        else:
            return EventLoopChoice("uvloop", uvloop.new_event_loop)
    return EventLoopChoice("asyncio", asyncio.new_event_loop)
