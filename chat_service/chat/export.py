"""A conversation as a file to download: Markdown to read, JSON to process.

Both hold the conversation's title, model and instructions and every exchange, oldest first,
with its time, the model that replied and the tokens it cost. JSON is the API's own shapes
(the conversation, with its history items under ``history``); Markdown is for people, one
section per message, the texts as they were written (a reply is Markdown already).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from chat_service.chat.contract import conversation_body, history_item
from chat_service.chat.domain import Conversation, Exchange

# What a file name may keep of a title: letters, digits, and a few separators.
_UNSAFE = re.compile(r"[^\w.-]+")
MAX_NAME_CHARS = 60


@dataclass(frozen=True, slots=True)
class ExportFile:
    name: str
    content_type: str
    body: bytes


FORMATS = ("markdown", "json")


def export(conversation: Conversation, exchanges: Sequence[Exchange], kind: str) -> ExportFile:
    """The conversation as ``kind`` (one of FORMATS)."""
    if kind == "json":
        body = export_json(conversation, exchanges)
        return ExportFile(file_name(conversation, "json"), "application/json", body)
    body = export_markdown(conversation, exchanges)
    return ExportFile(file_name(conversation, "md"), "text/markdown; charset=utf-8", body)


def export_json(conversation: Conversation, exchanges: Sequence[Exchange]) -> bytes:
    body = conversation_body(conversation)
    body["history"] = [history_item(exchange) for exchange in exchanges]
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


def export_markdown(conversation: Conversation, exchanges: Sequence[Exchange]) -> bytes:
    lines = [f"# {conversation.title or 'Untitled chat'}", ""]
    count = len(exchanges)
    facts = [f"Started {conversation.created_at}", f"{count} exchange{'' if count == 1 else 's'}"]
    if conversation.model:
        facts.append(f"model {conversation.model}")
    lines += [" · ".join(facts), ""]
    if conversation.system_prompt:
        lines += ["## Instructions", "", conversation.system_prompt, ""]
    for exchange in exchanges:
        lines += [f"## You · {exchange.created_at}", "", exchange.user, ""]
        origin = exchange.origin
        about = [origin.model or "Assistant"]
        if origin.input_tokens is not None or origin.output_tokens is not None:
            about.append(f"{_count(origin.input_tokens)} in, {_count(origin.output_tokens)} out")
        lines += [f"## {' · '.join(about)}", "", exchange.ai, ""]
    return "\n".join(lines).encode()


def file_name(conversation: Conversation, extension: str) -> str:
    """``<title>.<extension>``, the title cut to what any file system takes (the id when
    nothing of it is left)."""
    stem = _UNSAFE.sub("-", conversation.title or "").strip("-.")[:MAX_NAME_CHARS].strip("-.")
    return f"{stem or conversation.id}.{extension}"


def _count(tokens: int | None) -> str:
    return "?" if tokens is None else f"{tokens:,}"
