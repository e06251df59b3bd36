"""Parsing and validation of request bodies and query strings, as the contract defines it.

Every rejection is an :class:`ApiError` whose message tells the client what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chat_service.api.cursors import MAX_TURN, EarlierCursor, position_of, turn_of
from chat_service.api.errors import ApiError
from chat_service.chat.domain import (
    DEFAULT_CONVERSATION,
    DEFAULTS,
    KEEP,
    ConversationCursor,
    Keep,
    Position,
    SettingsChange,
    is_format_character,
)
from chat_service.config import MAX_MODEL_CHARS
from chat_service.timestamps import rfc3339

MAX_HISTORY_LIMIT = 1000
DEFAULT_CONVERSATIONS_LIMIT = 50
MAX_CONVERSATIONS_LIMIT = 100
MAX_TITLE_CHARS = 200
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 50
MAX_SEARCH_CHARS = 200
_CURSOR = re.compile(r"[0-9]{1,13}\.[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# C0 and C1 control characters and DEL: never part of a title.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Whitespace as JSON Schema's (ECMA-262) \s defines it, so "blank" here means exactly what
# the OpenAPI pattern of `message` says.
_BLANK = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_POSITIVE_INT = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class NewMessage:
    conversation_id: str
    text: str
    model: str | None = None
    # The turn this message is answered in place of (regenerate, edit).
    replace_turn: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    conversation_id: str
    limit: int | None
    before_turn: int | None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, f"Request body has a duplicate key: {key!r}.")
        result[key] = value
    return result


# One decoder for every request (json.loads with a hook builds a new one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not valid UTF-8.") from None
    try:
        body = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    return body


def parse_message_body(raw: bytes, *, max_chars: int) -> NewMessage:
    """Validate a ``POST /chat/message`` body (bytes as received, any Content-Type)."""
    body = _json_object(raw)
    if "message" not in body:
        raise ApiError(400, "Field 'message' is required.")
    message = body["message"]
    if not isinstance(message, str):
        raise ApiError(400, "Field 'message' must be a string.")
    if not message.strip(_BLANK):
        raise ApiError(400, "Field 'message' must not be blank.")
    if "\x00" in message:
        raise ApiError(400, "Field 'message' must not contain NUL characters.")
    if not _is_encodable(message):  # "\ud800" is valid JSON but no Unicode text
        raise ApiError(400, "Field 'message' must be valid Unicode (no lone surrogates).")
    if len(message) > max_chars:
        raise ApiError(400, f"Field 'message' must be at most {max_chars} characters.")
    if "conversation_id" in body and body["conversation_id"] is None:
        raise ApiError(400, "'conversation_id' must be a string when given.")
    model = _model(body["model"]) if "model" in body else None
    replace_turn = _replace_turn(body["replace_turn"]) if "replace_turn" in body else None
    return NewMessage(_conversation_id(body.get("conversation_id")), message, model, replace_turn)


def _replace_turn(value: object) -> int:
    """A turn of the conversation (history items' ``turn``): a JSON integer from 1 up to
    what a cursor can name (cursors.py); ``2.0`` is one too, as JSON Schema counts it.
    Whether the conversation has it is the turn's question (409 when not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TURN:
        raise ApiError(
            400, f"Field 'replace_turn' must be a turn of the conversation (1-{MAX_TURN})."
        )
    return value


def parse_history_query(query: Mapping[str, str]) -> HistoryQuery:
    """Validate ``GET /chat/history``'s optional ``limit``, ``before`` and ``conversation_id``."""
    limit = _positive_int(query, "limit")
    if limit is not None and limit > MAX_HISTORY_LIMIT:
        raise ApiError(400, f"Query parameter 'limit' must be at most {MAX_HISTORY_LIMIT}.")
    return HistoryQuery(
        conversation_id=_conversation_id(query.get("conversation_id")),
        limit=limit,
        before_turn=_before_turn(query.get("before")),
    )


def _before_turn(raw: str | None) -> int | None:
    """A history page's ``before`` cursor (cursors.py; ``t0``, before the first exchange,
    asks for nothing and gets it). One of an earlier version is refused with what to do
    about it, as a page cannot be found from it."""
    if raw is None:
        return None
    try:
        turn = turn_of(raw)
    except EarlierCursor:
        raise ApiError(
            400,
            "Query parameter 'before' is a cursor from an earlier version of the service; "
            "load the history again and page with the cursors of its Link headers.",
        ) from None
    if turn is None:
        raise ApiError(
            400, "Query parameter 'before' must be a cursor from a Link header, such as t42."
        )
    return turn


@dataclass(frozen=True, slots=True)
class EventsQuery:
    conversation_id: str
    after_turn: int | None
    # Which of the two carried a cursor of an earlier version, when one did.
    earlier_cursor_in: str | None = None
    # The highest generation the client knows of (the cursor's, after its dot).
    generation: int = 0


def parse_events_query(query: Mapping[str, str], headers: Mapping[str, str]) -> EventsQuery:
    """``GET /chat/events``: the conversation, and where to resume: the ``Last-Event-ID``
    header (an EventSource sends it when it reconnects), else ``last_event_id`` (a first
    connection that should start after a known exchange; ``t0`` for the beginning). Both are
    checked when both are sent. A cursor of an earlier version is not refused (an EventSource
    would reconnect with it again and again): the query says so, for events.py."""
    conversation_id = _conversation_id(query.get("conversation_id"))
    given = [
        (name, raw)
        for name, raw in (
            ("Last-Event-ID", headers.get("Last-Event-ID")),
            ("last_event_id", query.get("last_event_id")),
        )
        if raw  # absent, or empty (what the SSE specification sends for "no id yet")
    ]
    resume: list[tuple[str, Position | None]] = []
    for name, raw in given:
        try:
            resume.append((name, _event_position(raw, name)))
        except EarlierCursor:
            resume.append((name, None))
    if not resume:
        return EventsQuery(conversation_id, None)
    name, position = resume[0]  # the header's, when there is one
    if position is None:
        return EventsQuery(conversation_id, None, earlier_cursor_in=name)
    return EventsQuery(conversation_id, position.turn, generation=position.generation)


def _event_position(raw: str, name: str) -> Position:
    position = position_of(raw)
    if position is None:
        raise ApiError(400, f"{name} must be the id of an exchange's event, such as t42.")
    return position


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ConversationsQuery:
    limit: int
    after: ConversationCursor | None


def parse_conversations_query(query: Mapping[str, str]) -> ConversationsQuery:
    """``GET /chat/conversations``: ``limit`` (default and bound below) and the ``before``
    cursor of a ``Link`` this service sent."""
    limit = _positive_int(query, "limit")
    if limit is not None and limit > MAX_CONVERSATIONS_LIMIT:
        raise ApiError(400, f"Query parameter 'limit' must be at most {MAX_CONVERSATIONS_LIMIT}.")
    cursor = query.get("before")
    return ConversationsQuery(
        limit=limit or DEFAULT_CONVERSATIONS_LIMIT,
        after=None if cursor is None else decode_cursor(cursor),
    )


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str
    limit: int


def parse_search_query(query: Mapping[str, str]) -> SearchQuery:
    """``GET /chat/search``: ``q``, the words to look for (as typed: any characters, none of
    them syntax), and ``limit`` (default and bound below)."""
    text = query.get("q")
    if text is None:
        raise ApiError(400, "Query parameter 'q' is required.")
    if not text.strip(_BLANK):
        raise ApiError(400, "Query parameter 'q' must not be blank.")
    if len(text) > MAX_SEARCH_CHARS:
        raise ApiError(400, f"Query parameter 'q' must be at most {MAX_SEARCH_CHARS} characters.")
    limit = _positive_int(query, "limit")
    if limit is not None and limit > MAX_SEARCH_LIMIT:
        raise ApiError(400, f"Query parameter 'limit' must be at most {MAX_SEARCH_LIMIT}.")
    return SearchQuery(text, limit or DEFAULT_SEARCH_LIMIT)


def encode_cursor(cursor: ConversationCursor) -> str:
    """``<last activity, epoch milliseconds>.<id>``: where the next page starts. Any such
    pair is a valid cursor (the conversations less recently active than it)."""
    moment = datetime.fromisoformat(cursor.updated_at)
    return f"{round(moment.timestamp() * 1000)}.{cursor.id}"


def decode_cursor(text: str) -> ConversationCursor:
    if not _CURSOR.fullmatch(text):
        raise ApiError(
            400, "Query parameter 'before' must be a cursor from a previous page's Link."
        )
    millis, _, conversation_id = text.partition(".")
    return ConversationCursor(rfc3339(int(millis) / 1000), conversation_id)


def parse_new_conversation_body(
    raw: bytes, *, max_prompt_chars: int
) -> tuple[str | None, SettingsChange]:
    """``POST /chat/conversations``: an optional body with an optional ``title``, ``model``
    and ``system_prompt``."""
    if not raw.strip():
        return None, DEFAULTS
    body = _json_object(raw)
    title = _title(body["title"]) if "title" in body else None
    return title, _settings(body, max_prompt_chars)


def parse_change_body(raw: bytes, *, max_prompt_chars: int) -> tuple[str | None, SettingsChange]:
    """``PATCH /chat/conversations/{id}``: any of ``title``, ``model`` and ``system_prompt``
    (null: back to the deployment's), at least one."""
    body = _json_object(raw)
    if not {"title", "model", "system_prompt"} & body.keys():
        raise ApiError(400, "Give at least one of 'title', 'model' and 'system_prompt'.")
    title = _title(body["title"]) if "title" in body else None
    return title, _settings(body, max_prompt_chars)


def _settings(body: dict[str, Any], max_prompt_chars: int) -> SettingsChange:
    """A conversation's model and instructions as a body gives them: absent (kept), null
    (the deployment's) or a value."""
    model: str | Keep | None = KEEP
    prompt: str | Keep | None = KEEP
    if "model" in body:
        model = None if body["model"] is None else _model(body["model"])
    if "system_prompt" in body:
        value = body["system_prompt"]
        prompt = None if value is None else _system_prompt(value, max_prompt_chars)
    return SettingsChange(model, prompt)


def _model(value: object) -> str:
    """A model's name: what GET /chat/models lists (whether it is offered is the handler's
    question, asked of the facade)."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_MODEL_CHARS
        or not value.isprintable()
    ):
        raise ApiError(
            400,
            f"Field 'model' must be a model's name (1-{MAX_MODEL_CHARS} printable characters); "
            "GET /chat/models lists them.",
        )
    return value


def _system_prompt(value: object, max_chars: int) -> str:
    """Instructions: text like a message, as long as one may be; empty means none at all
    (null, the deployment's)."""
    if not isinstance(value, str):
        raise ApiError(400, "Field 'system_prompt' must be a string or null.")
    if "\x00" in value or not _is_encodable(value):
        raise ApiError(400, "Field 'system_prompt' must be Unicode text without NUL characters.")
    if len(value) > max_chars:
        raise ApiError(400, f"Field 'system_prompt' must be at most {max_chars} characters.")
    return value


def _title(title: object) -> str:
    """1-200 characters, not blank, no control or format characters (as the OpenAPI schema
    says); stored trimmed, its runs of whitespace made one space. Format characters are
    refused rather than dropped: what is stored is what the caller sees it sent, and the
    message names the invisible character it could not see."""
    if not isinstance(title, str):
        raise ApiError(400, "Field 'title' must be a string.")
    if not 1 <= len(title) <= MAX_TITLE_CHARS or not title.strip(_BLANK):
        raise ApiError(400, f"Field 'title' must be 1-{MAX_TITLE_CHARS} characters, not blank.")
    if _CONTROL.search(title) or not _is_encodable(title):
        raise ApiError(400, "Field 'title' must be text without control characters.")
    if (invisible := next(filter(is_format_character, title), None)) is not None:
        raise ApiError(
            400,
            "Field 'title' must not contain invisible format characters "
            f"(found U+{ord(invisible):04X}).",
        )
    return " ".join(title.split())


def parse_conversation_id(value: str) -> str:
    """A conversation id from a path: the same rule as ``conversation_id`` elsewhere."""
    return _conversation_id(value)


def _positive_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _POSITIVE_INT.fullmatch(raw) or int(raw) == 0:
        raise ApiError(400, f"Query parameter {name!r} must be a positive integer.")
    return int(raw)


def _conversation_id(value: object) -> str:
    if value is None:
        return DEFAULT_CONVERSATION
    if not isinstance(value, str) or not _CONVERSATION_ID.fullmatch(value):
        raise ApiError(
            400,
            "'conversation_id' must be 1-128 characters of letters, digits, '.', '_', ':' "
            "or '-', starting with a letter or digit.",
        )
    return value
