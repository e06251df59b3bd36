"""Answering a message: the domain's one workflow, shared by the plain and streamed APIs.

A turn holds its conversation (one message at a time, in arrival order: see
``ordering.py``), reads the context, gets the reply from the reply cache or the model, and
stores the exchange. Model calls take one of the model's slots, shared fairly between
callers (``model_slots.py``); a call that cannot have one raises before producing anything,
so the API can still answer with a status instead of starting a stream.

What the client is sent decides what is stored: the API saves the whole reply once it is
complete, or, when the client stops a stream, the part of it that was sent.

A message may replace an earlier turn (regenerate, edit): the model sees only the exchanges
before it, the reply cache is not asked (a new reply is the point; the reply is still
cached for a plain repeat), and storing the exchange cuts the conversation there, in the
same transaction (store.ExchangeLog.append). Nothing is cut until then: a reply that fails,
or is stopped before anything was sent, leaves the conversation as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from chat_service.assistant.base import Assistant, Completion
from chat_service.chat.domain import (
    ConversationRef,
    Exchange,
    ExchangeNotStored,
    ReplyOrigin,
    StoreError,
    TurnNotFound,
)
from chat_service.chat.model_slots import ModelSlots
from chat_service.chat.ordering import ConversationLocks
from chat_service.chat.reply_cache import ReplyCache, cache_key
from chat_service.store import ConversationCatalogue, ExchangeLog
from chat_service.telemetry.genai import GenAITelemetry, ReplyWatch

# (conversation, count) -> the conversation's newest ``count`` exchanges, oldest first.
ContextReader = Callable[[ConversationRef, int], Awaitable[Sequence[Exchange]]]


class ReplyService:
    def __init__(
        self,
        exchanges: ExchangeLog,
        conversations: ConversationCatalogue,
        assistant: Assistant,
        telemetry: GenAITelemetry,
        *,
        context_turns: int,
        slots: ModelSlots,
        system_prompt: str | None = None,
        cache: ReplyCache | None = None,
        context: ContextReader | None = None,
    ) -> None:
        self.exchanges = exchanges
        self.conversations = conversations
        # The application passes its history cache's reader; by default the store is asked.
        self._read_context = context or self._read_stored
        self.assistant = assistant
        self.telemetry = telemetry
        self.context_turns = context_turns
        self.slots = slots
        self.system_prompt = system_prompt
        self.cache = cache
        self._locks = ConversationLocks()

    def turn(
        self,
        conversation: ConversationRef,
        message: str,
        caller: str,
        *,
        model: str | None = None,
        replaces_turn: int | None = None,
    ) -> _TakenTurn:
        """``async with``: wait for the conversation's turn and read its context and
        settings; the turn is this conversation's until the block ends. ``caller``: who the
        model's slots are shared between (model_slots.py); ``model``: the message's own
        choice, over the conversation's; ``replaces_turn``: the turn this message is
        answered in place of. Raises StoreError, or TurnNotFound when the conversation has
        no such turn (by the time the turn came: another request may have cut it)."""
        return _TakenTurn(self, conversation, message, caller, model, replaces_turn)

    async def _begin(
        self,
        conversation: ConversationRef,
        message: str,
        caller: str,
        model: str | None,
        replaces_turn: int | None,
    ) -> Turn:
        """The turn, once the conversation is held: its settings and context read."""
        # The settings first: a store that finds no conversation knows it has no
        # exchanges either, and the context needs no read of its own (a new chat).
        settings = await self.conversations.conversation_settings(conversation)
        if replaces_turn is None:
            history = await self._read_context(conversation, self.context_turns)
        else:
            if replaces_turn > await self.exchanges.last_turn(conversation):
                raise TurnNotFound(replaces_turn)
            history = await self._read_before(conversation, replaces_turn)
        asked = model or settings.model or self.assistant.model
        prompt = settings.system_prompt
        return Turn(self, conversation, message, history, caller, asked, prompt, replaces_turn)

    async def delete(self, conversation: ConversationRef) -> bool:
        """Delete the conversation once a reply being written to it here is stored, so the
        deletion takes that exchange too rather than being undone by it. Raises StoreError."""
        async with self._locks.hold(conversation):
            return await self.conversations.delete_conversation(conversation)

    async def _read_stored(self, conversation: ConversationRef, count: int) -> Sequence[Exchange]:
        if count <= 0:
            return ()
        return (await self.exchanges.history(conversation, limit=count)).exchanges

    async def _read_before(self, conversation: ConversationRef, turn: int) -> Sequence[Exchange]:
        """The context of a message that replaces ``turn``: what came before it."""
        if self.context_turns <= 0:
            return ()
        page = await self.exchanges.history(
            conversation, limit=self.context_turns, before_turn=turn
        )
        return page.exchanges

    async def close(self) -> None:
        await self.assistant.close()


class _TakenTurn:
    """:meth:`ReplyService.turn`'s ``async with``. A class rather than a generator-based
    context manager: every message takes one (bench/README.md, issue 26)."""

    __slots__ = ("_args", "_hold", "_service")

    def __init__(
        self,
        service: ReplyService,
        conversation: ConversationRef,
        message: str,
        caller: str,
        model: str | None,
        replaces_turn: int | None,
    ) -> None:
        self._service = service
        self._args = (conversation, message, caller, model, replaces_turn)
        self._hold = service._locks.hold(conversation)

    async def __aenter__(self) -> Turn:
        await self._hold.__aenter__()
        try:
            return await self._service._begin(*self._args)
        except BaseException:
            await self._hold.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self._hold.__aexit__(*exc_info)


class Turn:
    """One message being answered; see :meth:`ReplyService.turn`."""

    def __init__(
        self,
        service: ReplyService,
        conversation: ConversationRef,
        message: str,
        history: Sequence[Exchange],
        caller: str,
        model: str,
        system_prompt: str | None = None,
        replaces_turn: int | None = None,
    ) -> None:
        self._service = service
        self.conversation = conversation
        self.message = message
        self.history = history
        self.caller = caller
        self.model = model
        # The conversation's own instructions; None: the deployment's.
        self.system_prompt = system_prompt
        self.replaces_turn = replaces_turn
        # What is stored with the reply: the model asked, until the model says which answered
        # and what it cost (a cached or stopped reply spent no tokens the model told of).
        self.origin = ReplyOrigin(model=model)

    async def reply(self) -> AsyncGenerator[str, None]:
        """The reply, piece by piece. Raises ModelBusy or TooManyReplies (before the first
        piece) or AssistantError; ``aclose()`` it to stop the model call."""
        service = self._service
        key = None
        if service.cache is not None:
            key = cache_key(
                self.conversation.owner,
                self.model,
                service.system_prompt if self.system_prompt is None else self.system_prompt,
                self.history,
                self.message,
            )
            cached = None
            if self.replaces_turn is None:  # asked again, it is answered anew (regenerate)
                cached = service.cache.get(key)
                service.telemetry.cache_lookup(hit=cached is not None)
            if cached is not None:
                with self._watch(cached=True) as watch:
                    watch.piece(cached)
                    yield cached
                return
        pieces: list[str] = []
        completion: Completion | None = None
        async with service.slots.take(self.caller):
            stream = service.assistant.stream(
                self.message,
                self.history,
                model=self.model,
                system_prompt=self.system_prompt,
            )
            # One loop over the model's chunks, the telemetry told of each, rather than a
            # generator of its own around them (bench/README.md, issue 26).
            with self._watch(cached=False) as watch:
                async with contextlib.aclosing(stream):
                    async for chunk in stream:
                        if isinstance(chunk, Completion):
                            watch.completed(chunk)
                            completion = chunk
                            self.origin = ReplyOrigin(
                                chunk.model, chunk.input_tokens, chunk.output_tokens
                            )
                            continue
                        watch.piece(chunk)
                        if key is not None:
                            pieces.append(chunk)
                        yield chunk
        complete = completion is not None and completion.finish_reason == "stop"
        if key is not None and service.cache is not None and complete:
            service.cache.put(key, "".join(pieces))

    def _watch(self, *, cached: bool) -> ReplyWatch:
        return self._service.telemetry.watch(
            message=self.message,
            history=self.history,
            # The caller's id for it: the principal is on the request's span (enduser.id).
            conversation_id=self.conversation.id,
            model=self.model,
            system_prompt=self.system_prompt,
            cached=cached,
        )

    async def save(self, reply: str, *, trace_id: str | None = None) -> Exchange:
        """Store the exchange (the whole reply, or the part the client was sent); raises
        ExchangeNotStored (a StoreError) when it could not be."""
        try:
            return await self._service.exchanges.append(
                self.conversation,
                self.message,
                reply,
                trace_id=trace_id,
                origin=self.origin,
                replaces_turn=self.replaces_turn,
            )
        except StoreError as exc:
            raise ExchangeNotStored(str(exc)) from exc
