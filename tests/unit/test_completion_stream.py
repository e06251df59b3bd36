"""Decoding a streamed chat completion's body (chat_service/assistant/completion_stream.py).

The wire format end to end, through the SDK and a real server, is in
test_openai_assistant.py; these are the cases a server may send that ours does not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable

import pytest

from chat_service.assistant.completion_stream import Chunk, StreamError, parse_chunk, read_chunks


async def _lines(lines: Iterable[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def decode(lines: Iterable[str]) -> list[Chunk]:
    return [chunk async for chunk in read_chunks(_lines(lines))]


def content(text: str, finish_reason: str | None = None) -> str:
    """A content chunk as OpenAI sends it."""
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}
    return json.dumps({"id": "chatcmpl-1", "model": "m-1", "choices": [choice]})


async def test_each_event_is_a_chunk_and_done_ends_them() -> None:
    chunks = await decode(
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


async def test_comments_other_fields_and_blank_runs_are_skipped() -> None:
    chunks = await decode(
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


async def test_data_lines_of_one_event_are_joined_by_a_newline() -> None:
    [chunk] = await decode(['data: {"choices":[{"delta":', 'data: {"content":"x"}}]}', ""])
    assert chunk.text == "x"


async def test_nothing_after_done_is_a_chunk_and_an_unended_event_is_dropped() -> None:
    chunks = await decode(
        [f"data: {content('a')}", "", "data: [DONE]", "", f"data: {content('b')}", ""]
    )
    assert [c.text for c in chunks] == ["a"]
    assert await decode([f"data: {content('a')}"]) == [], "no blank line: not dispatched"


async def test_the_body_is_read_to_its_end_after_done() -> None:
    read: list[str] = []

    async def lines() -> AsyncIterator[str]:
        for line in ["data: [DONE]", "", ": trailer", "", "data: {}", "", ": end"]:
            read.append(line)
            yield line

    assert [chunk async for chunk in read_chunks(lines())] == []
    assert len(read) == 7, "read to the end: the connection is left reusable"


async def test_an_error_object_mid_stream_fails_the_stream() -> None:
    stream = read_chunks(
        _lines(
            [
                f"data: {content('a')}",
                "",
                'data: {"error":{"message":"overloaded, key sk-123","type":"server_error"}}',
                "",
            ]
        )
    )
    assert (await anext(stream)).text == "a"
    with pytest.raises(StreamError) as failure:
        await anext(stream)
    assert "sk-123" not in str(failure.value)
    assert str(failure.value) == "the model reported an error mid-stream"


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
