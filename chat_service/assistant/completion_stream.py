"""Reading a streamed chat completion's body: server-sent events whose data are JSON chunks.

The body is read as it arrives, a block at a time (model_client.py), and each block's
complete events decoded here at once: several chunks that came in one read are one step
for the relay, not one each. A relay needs five fields of a chunk, so each is decoded with
orjson rather than built into the SDK's typed models (about half of the service's CPU at
1,000 streams when it was: bench/profiles/g.txt).

The events follow the server-sent events format as OpenAI and compatible servers send it:
lines ended by LF, CRLF or CR, ``data:`` lines (several in one event are joined by a line
feed), a blank line ending each event, comment lines (``:``) and other fields ignored,
``data: [DONE]`` after the last chunk. An ``error`` object in place of a chunk is a failure
reported mid-stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"
# A line ends with CRLF, LF or CR (a CR the block ends with is a line end whatever follows).
_LINE_END = re.compile(rb"\r\n|\r|\n")


class StreamError(Exception):
    """The stream carried an error, or something that is not a chunk. The message is safe
    to log: it never quotes the server's body."""


@dataclass(slots=True)
class Chunk:
    """What the relay reads from one ``chat.completion.chunk``. Not frozen: one is made for
    every chunk of every reply, and a frozen dataclass's constructor costs 2.5 times as
    much (bench/README.md, issue 26); nothing keeps one past the chunk it describes."""

    text: str = ""
    finish_reason: str | None = None
    model: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class EventReader:
    """The chunks of a stream, block by block: :meth:`feed` takes what one read gave and
    returns the chunks of the events it completed; a line or an event cut by the end of a
    block is finished by the next. Events after ``[DONE]`` are read and ignored (the body is
    read to its end, so the connection can be reused).

    An event that is an error, or no chunk at all, ends the stream as ``[DONE]`` does and is
    kept in :attr:`error`; the chunks before it in the same block are still returned, so
    what a reply had before its failure does not depend on how the bytes were split into
    reads."""

    __slots__ = ("_after_cr", "_data", "_partial", "done", "error")

    def __init__(self) -> None:
        self._partial = b""  # the start of a line the block ended in
        self._after_cr = False  # the last block ended with CR: a LF first is its CRLF's
        self._data: list[bytes] = []  # the data lines of the event being read
        self.done = False
        self.error: StreamError | None = None  # why the stream ended early, if it did

    def feed(self, block: bytes) -> list[Chunk]:
        if self._after_cr and block.startswith(b"\n"):
            block = block[1:]
        self._after_cr = block.endswith(b"\r")
        data = self._partial + block
        lines = _LINE_END.split(data) if b"\r" in data else data.split(b"\n")
        self._partial = lines.pop()
        chunks: list[Chunk] = []
        for line in lines:
            if line:
                if line.startswith(b"data:"):
                    self._data.append(line[6:] if line.startswith(b"data: ") else line[5:])
                continue
            if not self._data:
                continue
            payload = b"\n".join(self._data)
            self._data.clear()
            if self.done:
                continue
            if payload.startswith(DONE):
                self.done = True
                continue
            try:
                chunks.append(parse_chunk(payload))
            except StreamError as exc:
                self.error, self.done = exc, True
        return chunks


def parse_chunk(payload: bytes | str) -> Chunk:
    """One event's data as a :class:`Chunk`; raises StreamError for an error or a payload
    that is not a chunk."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise StreamError("the model sent a chunk that is not JSON") from None
    if not isinstance(data, dict):
        raise StreamError("the model sent a chunk that is not a JSON object")
    if data.get("error"):
        raise StreamError("the model reported an error mid-stream")
    text, finish_reason = _first_choice(data.get("choices"))
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return Chunk(
        text=text,
        finish_reason=finish_reason,
        model=_string(data.get("model")),
        response_id=_string(data.get("id")),
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
    )


def _first_choice(choices: Any) -> tuple[str, str | None]:
    """The text and finish reason of the first choice (one is asked for); the usage chunk
    has none."""
    if not choices:
        return "", None
    if not isinstance(choices, list) or not isinstance(choice := choices[0], dict):
        raise StreamError("the model sent a chunk whose choices are not a list of objects")
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is not None and not isinstance(content, str):
        raise StreamError("the model sent a chunk whose content is not text")
    return content or "", _string(choice.get("finish_reason"))


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
