"""The domain's types, shared by every layer: conversations, their owners, their exchanges.

A conversation belongs to a principal: :class:`ConversationRef` carries the owner and the
owner's id for it together, from the identity middleware down to the store, and only the
store turns it into a storage key (store/keys.py). Pure data, no I/O: the store and the
assistants import it without importing the application layer above them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple
from unicodedata import category

# The conversation a request that names none is about (the original contract's one history).
DEFAULT_CONVERSATION = "default"
TITLE_FROM_MESSAGE_CHARS = 60
# How much of a message a default title is first looked for in (it is derived on every write):
# room for the title's characters and the whitespace and invisible ones between them.
_TITLE_SCAN_CHARS = 4 * TITLE_FROM_MESSAGE_CHARS
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


# The two format characters that are part of how text is written, not tricks on it: the
# zero-width joiner builds emoji sequences (a family, a flag, a skin tone on a profession)
# and, with the non-joiner, is required spelling in Persian and the Indic scripts.
_JOINERS = frozenset("\u200c\u200d")


def is_format_character(char: str) -> bool:
    """A Unicode format character (general category Cf) other than the two joiners:
    invisible, yet it changes how what surrounds it is shown (a right-to-left override shows
    a title reversed; zero-width ones make two titles that look alike differ). Titles have
    none."""
    # Every Cf character is non-printable: the C-level test spares most text the lookup.
    return not char.isprintable() and category(char) == "Cf" and char not in _JOINERS


class StoreError(Exception):
    """The store could not carry out an operation (I/O error, locked, corrupt, ...)."""


class StoreOpenError(StoreError):
    """The database could not be opened or migrated at start-up."""


class ExchangeNotStored(StoreError):
    """A reply was made, but the exchange could not be stored (so nothing was)."""


class TurnNotFound(Exception):
    """A message was to replace a turn the conversation does not have (it was cut, or
    never reached)."""

    def __init__(self, turn: int) -> None:
        super().__init__(f"The conversation has no turn {turn}.")
        self.turn = turn


class ConversationRef(NamedTuple):
    """A conversation as its owner names it: ``owner`` is the principal's namespace (empty
    for the anonymous principal), ``id`` the conversation id the owner chose or was given.

    A named tuple (immutable, compared by value) rather than a dataclass: it keys the caches
    and locks of every request, and a tuple's hash and equality are the interpreter's own."""

    owner: str
    id: str


@dataclass(frozen=True, slots=True)
class ReplyOrigin:
    """Who answered and what it cost, stored with the reply: the model it came from and the
    token counts the model reported. Each is None when unknown: a reply stored before
    models were recorded, a model that reported no usage, a reply from the reply cache
    (no tokens spent), or one the client stopped before the model said."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


NO_ORIGIN = ReplyOrigin()


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user message and the assistant's reply, as stored."""

    id: int
    conversation: ConversationRef
    turn: int
    user: str
    ai: str
    created_at: str
    trace_id: str | None = None
    origin: ReplyOrigin = NO_ORIGIN
    # How many times the conversation had been cut (regenerate, edit) when this was stored:
    # it never decreases from one turn to the next, so it tells a client that holds a turn
    # whether what it holds is still there (chat/live.py).
    generation: int = 0

    @property
    def cursor(self) -> str:
        return exchange_cursor(self.turn, self.generation)


class Position(NamedTuple):
    """Where a client stands in a conversation: the turn of the last exchange it holds, and
    the highest generation it knows of (a cut since is one of a higher generation)."""

    turn: int
    generation: int = 0


def exchange_cursor(turn: int, generation: int) -> str:
    """What clients are given to name an exchange (history items' ``id``, events' ids, the
    history's ``before``): ``t`` and its turn, and after a dot its generation when the
    conversation has been cut (``t42``, ``t7.1``). Turns and generations are one
    conversation's: a cursor tells nothing of anyone else's traffic."""
    return f"t{turn}.{generation}" if generation else f"t{turn}"


class HistoryKeys(NamedTuple):
    """The keys of a history item (chat/contract.py), for a store that writes the JSON
    itself: the user's message and the reply, then the exchange's turn, time, model, token
    usage (an object of the two counts, or null when neither is known) and cursor."""

    user: str
    ai: str
    turn: str = "turn"
    created_at: str = "created_at"
    model: str = "model"
    usage: str = "usage"
    input_tokens: str = "input_tokens"
    output_tokens: str = "output_tokens"
    id: str = "id"


def history_item(exchange: Exchange, keys: HistoryKeys) -> dict[str, object]:
    """An exchange as a history item under ``keys`` (chat/contract.py has the contract's)."""
    origin = exchange.origin
    usage = None
    if origin.input_tokens is not None or origin.output_tokens is not None:
        usage = {keys.input_tokens: origin.input_tokens, keys.output_tokens: origin.output_tokens}
    return {
        keys.user: exchange.user,
        keys.ai: exchange.ai,
        keys.turn: exchange.turn,
        keys.created_at: exchange.created_at,
        keys.model: origin.model,
        keys.usage: usage,
        keys.id: exchange.cursor,
    }


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Exchanges oldest first, and whether older ones exist before the first of them."""

    exchanges: Sequence[Exchange]
    has_older: bool


def page_of_newest(newest_first: Sequence[Exchange], limit: int) -> HistoryPage:
    """A history page from up to ``limit + 1`` rows read newest first: the extra row, when
    there is one, only tells that an older page exists."""
    page = list(newest_first[:limit])
    page.reverse()
    return HistoryPage(page, has_older=len(newest_first) > limit)


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of one owner; ``title`` is None until it has one."""

    id: str
    title: str | None
    created_at: str
    updated_at: str
    exchanges: int
    # Its own model and instructions; None: the deployment's (CHAT_MODEL, CHAT_SYSTEM_PROMPT).
    model: str | None = None
    system_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """What a conversation chooses for its replies; None: the deployment's choice."""

    model: str | None = None
    system_prompt: str | None = None


NO_SETTINGS = ConversationSettings()


class Keep(enum.Enum):
    """A setting a change leaves as it is (None would set it back to the default)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A change to a conversation's model and instructions: each a new value, None to go
    back to the deployment's default, or KEEP."""

    model: str | Keep | None = KEEP
    system_prompt: str | Keep | None = KEEP

    @property
    def changes_anything(self) -> bool:
        return self.model is not KEEP or self.system_prompt is not KEEP

    def as_created(self) -> tuple[str | None, str | None]:
        """The model and instructions of a conversation created with this change."""
        model = None if isinstance(self.model, Keep) else self.model
        prompt = None if isinstance(self.system_prompt, Keep) else self.system_prompt
        return model, prompt


# A conversation created with no settings of its own: the deployment's model and instructions.
DEFAULTS = SettingsChange()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """An exchange that a search found, with its conversation's title."""

    exchange: Exchange
    title: str | None


@dataclass(frozen=True, slots=True)
class ConversationCursor:
    """Where a page of an owner's conversations (most recently active first) ends."""

    updated_at: str
    id: str


def title_from_message(message: str) -> str | None:
    """A conversation's default title: the start of its first message, on one line, cut
    at a word boundary when there is one near the limit; None when no printable text is
    left. Control and format characters may not be in a title, so they go (the message
    itself keeps them)."""
    text = _one_line(message[:_TITLE_SCAN_CHARS])
    if len(text) <= TITLE_FROM_MESSAGE_CHARS and len(message) > _TITLE_SCAN_CHARS:
        # Its start is mostly blank or invisible: the title may lie further on.
        text = _one_line(message)
    if not text:
        return None
    if len(text) <= TITLE_FROM_MESSAGE_CHARS:
        return text
    cut = text[: TITLE_FROM_MESSAGE_CHARS - 1]
    space = cut.rfind(" ")  # the text has no runs of spaces: what precedes it is a word
    if space >= TITLE_FROM_MESSAGE_CHARS // 2:
        cut = cut[:space]
    return cut + "…"


def _one_line(text: str) -> str:
    """``text`` without control and format characters, its words one space apart: a control
    character becomes a space, as it separated what it stood between; a format character
    becomes nothing, as that is how it was shown. What is left of a prefix of a text is a
    prefix of what is left of the text."""
    # Format characters are neither ASCII nor printable: most text is one or the other, and
    # both tests are one C-level pass, where the filter is a Python call per character
    # (every message is given a title in case it is a conversation's first: bench (a)).
    if text.isascii() or text.isprintable():
        visible = text
    else:
        visible = "".join(char for char in text if not is_format_character(char))
    return " ".join(_CONTROL.sub(" ", visible).split())
