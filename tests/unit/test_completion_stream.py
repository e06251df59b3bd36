"""Decoding a streamed chat completion's body (chat_service/assistant/completion_stream.py).

The wire format end to end, through a real server, is in test_openai_assistant.py; these are
the cases a server may send that ours does not, and bodies cut into blocks anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from chat_service.assistant.completion_stream import Chunk, EventReader, StreamError, parse_chunk


def decode(lines: Iterable[str], end: str = "\n") -> list[Chunk]:
    """The chunks of a body made of ``lines``, each ended by ``end``, read in one block."""
    return EventReader().feed("".join(line + end for line in lines).encode())


def content(text: str, finish_reason: str | None = None) -> str:
    """A content chunk as OpenAI sends it."""
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}
    return json.dumps({"id": "chatcmpl-1", "model": "m-1", "choices": [choice]})


def test_each_event_is_a_chunk_and_done_ends_them() -> None:
    chunks = decode(
        [
            f"data: {content('Hel')}",
            "",
            f"data: {content('lo', 'stop')}",
            "",
            'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,'
            '"completion_tokens":2,"total_tokens":5}}',
            "",
            "data: [DONE]",
            "",
        ]
    )
    assert [c.text for c in chunks] == ["Hel", "lo", ""]
    assert [c.finish_reason for c in chunks] == [None, "stop", None]
    assert chunks[0].model == "m-1"
    assert chunks[0].response_id == "chatcmpl-1"
    assert (chunks[2].input_tokens, chunks[2].output_tokens) == (3, 2)
    assert (chunks[0].input_tokens, chunks[0].output_tokens) == (None, None)


def test_comments_other_fields_and_blank_runs_are_skipped() -> None:
    chunks = decode(
        [
            ": keep-alive",
            "",
            "",
            "event: message",
            "id: 7",
            f"data:{content('a')}",  # no space after the colon is the same field
            "retry: 1000",
            "",
        ]
    )
    assert [c.text for c in chunks] == ["a"]


def test_data_lines_of_one_event_are_joined_by_a_newline() -> None:
    [chunk] = decode(['data: {"choices":[{"delta":', 'data: {"content":"x"}}]}', ""])
    assert chunk.text == "x"


def test_nothing_after_done_is_a_chunk_and_an_unended_event_is_dropped() -> None:
    chunks = decode([f"data: {content('a')}", "", "data: [DONE]", "", f"data: {content('b')}", ""])
    assert [c.text for c in chunks] == ["a"]
    assert decode([f"data: {content('a')}"]) == [], "no blank line: not dispatched"


def test_done_is_noticed_and_what_follows_read_and_dropped() -> None:
    reader = EventReader()
    assert reader.feed(f"data: {content('a')}\n\ndata: [DONE]\n\n".encode())[0].text == "a"
    assert reader.done, "the relay may stop asking once the body ends"
    assert reader.feed(f": trailer\n\ndata: {content('b')}\n\n".encode()) == []


def test_an_error_object_mid_stream_fails_the_stream() -> None:
    reader = EventReader()
    assert reader.feed(f"data: {content('a')}\n\n".encode())[0].text == "a"
    assert (
        reader.feed(
            b'data: {"error":{"message":"overloaded, key sk-123","type":"server_error"}}\n\n'
        )
        == []
    )
    assert reader.done
    assert "sk-123" not in str(reader.error)
    assert str(reader.error) == "the model reported an error mid-stream"


BODY = [
    ": keep-alive",
    "",
    f"data: {content('Hé')}",
    "",
    'data: {"choices":[{"delta":',
    'data: {"content":"llo"}}]}',
    "",
    f"data: {content('!', 'stop')}",
    "",
    "data: [DONE]",
    "",
]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_body_cut_into_blocks_anywhere_reads_the_same(end: str) -> None:
    """A read returns what has arrived, which may end mid-line, mid-character, or between
    the CR and the LF of a line end: cut at every byte, the body gives the same chunks."""
    body = "".join(line + end for line in BODY).encode()
    whole = [chunk.text for chunk in EventReader().feed(body)]
    assert whole == ["Hé", "llo", "!"]
    for cut in range(1, len(body)):
        reader = EventReader()
        texts = [chunk.text for chunk in reader.feed(body[:cut]) + reader.feed(body[cut:])]
        assert texts == whole, (end, cut)
    reader = EventReader()
    one_byte_at_a_time = [chunk.text for byte in body for chunk in reader.feed(bytes([byte]))]
    assert one_byte_at_a_time == whole
    assert reader.done


def test_several_events_in_one_block_are_read_together() -> None:
    """Chunks that arrive in one read are decoded in one step (the relay sends them as one
    piece)."""
    chunks = EventReader().feed(
        "".join(f"data: {content(word)}\n\n" for word in ("a ", "b ", "c")).encode()
    )
    assert [chunk.text for chunk in chunks] == ["a ", "b ", "c"]


def test_an_error_after_chunks_in_the_same_block_keeps_the_chunks_before_it() -> None:
    """Chunks that arrived before an error object in one read are the reply's so far: they
    are returned, and the error is held for after them, whatever the read's size was."""
    error = json.dumps({"error": {"message": "overloaded", "type": "server_error"}})
    reader = EventReader()
    chunks = reader.feed(
        f"data: {content('a ')}\n\ndata: {content('b ')}\n\ndata: {error}\n\n"
        f"data: {content('after')}\n\n".encode()
    )
    assert [chunk.text for chunk in chunks] == ["a ", "b "]
    assert isinstance(reader.error, StreamError)
    assert str(reader.error) == "the model reported an error mid-stream"
    assert reader.feed(f"data: {content('later')}\n\n".encode()) == [], "nothing after it"
    assert reader.done


def test_no_error_is_held_while_the_chunks_are_good() -> None:
    reader = EventReader()
    assert [chunk.text for chunk in reader.feed(f"data: {content('a')}\n\n".encode())] == ["a"]
    assert reader.error is None
    assert not reader.done


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "a chunk that is not JSON"),
        ("[1, 2]", "a chunk that is not a JSON object"),
        ('{"choices": {"delta": {}}}', "a chunk whose choices are not a list of objects"),
        ('{"choices": ["x"]}', "a chunk whose choices are not a list of objects"),
        ('{"choices": [{"delta": {"content": 5}}]}', "a chunk whose content is not text"),
    ],
)
def test_what_is_not_a_chunk_is_refused(payload: str, reason: str) -> None:
    with pytest.raises(StreamError) as failure:
        parse_chunk(payload)
    assert str(failure.value) == f"the model sent {reason}"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"choices": [{"delta": {"content": null}, "finish_reason": null}]}', Chunk()),
        ('{"choices": [{"delta": {"role": "assistant"}}]}', Chunk()),
        ('{"choices": [{"finish_reason": "length"}]}', Chunk(finish_reason="length")),
        ('{"error": null, "choices": []}', Chunk()),
        ('{"model": "", "id": 5}', Chunk()),
        ('{"usage": {"prompt_tokens": true, "completion_tokens": 4}}', Chunk(output_tokens=4)),
        ('{"usage": "none"}', Chunk()),
    ],
)
def test_missing_or_odd_fields_read_as_absent(payload: str, expected: Chunk) -> None:
    assert parse_chunk(payload) == expected
