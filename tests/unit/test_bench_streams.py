"""The load generator of the benchmark's scenario (g) (bench/streams.py), against the real
bare relay and the tests' model server: what it reports is what the streams did.

Its figures decide whether issue 26's targets are met, so its reading of a stream is tested
here: every stream counted once, every event counted, the first piece found wherever the
network splits it, the model server's stamp subtracted."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bench import reference_relay
from bench.streams import _complete, _first_content, _first_delta, parse_args, run
from tests.support.model import ModelServer

CHUNKS = 5


@pytest.fixture
def stamping_model(tmp_path: Path) -> Iterator[ModelServer]:
    server = ModelServer(tmp_path, options=("--no-records",)).start()
    server.default(chunks=["tok "] * CHUNKS, chunk_delay_s=0.02, stamp_first_chunk=True)
    yield server
    server.kill()


@pytest.fixture
async def bare_relay(stamping_model: ModelServer) -> AsyncIterator[str]:
    server = TestServer(reference_relay.create_app(stamping_model.base_url))
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_every_stream_and_event_is_counted_and_the_stamp_subtracted(
    stamping_model: ModelServer, bare_relay: str
) -> None:
    args = parse_args(
        [
            f"--url={bare_relay}",
            f"--model-url={stamping_model.url}",
            "--streams=20",
            "--direct=4",
            "--ramp=0.2",
        ]
    )
    assert gc.isenabled()
    summary = await run(args)
    assert gc.isenabled(), "the run gives the collector back as it found it"
    assert (summary["streams"], summary["completed"], summary["errors"]) == (20, 20, {})
    assert (summary["stamped"], summary["direct"]["stamped"]) == (20, 4)
    assert summary["deltas"] == 20 * CHUNKS
    direct = summary["direct"]
    assert (direct["streams"], direct["completed"], direct["chunks"]) == (4, 4, 4 * CHUNKS)
    ttft, added = summary["ttft_ms"], summary["added_ms"]
    # The model's own 20 ms before its first piece is in the TTFT and not in the added time.
    assert ttft["p50"] >= 20
    assert 0 < added["p50"] < ttft["p50"] - 15
    assert 0 < direct["added_ms"]["p50"] < direct["ttft_ms"]["p50"] - 15
    assert "running" not in summary, "none asked for"


async def test_streams_already_running_have_their_longest_wait_between_deltas_timed(
    stamping_model: ModelServer, bare_relay: str
) -> None:
    args = parse_args(
        [
            f"--url={bare_relay}",
            f"--model-url={stamping_model.url}",
            "--streams=10",
            "--direct=0",
            "--running=5",
            "--ramp=0.1",
        ]
    )
    summary = await run(args)
    assert (summary["streams"], summary["completed"]) == (10, 10)
    running = summary["running"]
    assert (running["streams"], running["completed"]) == (5, 5)
    # The model sends a chunk every 20 ms: no wait between deltas is shorter at its longest,
    # and nothing here holds one back for long.
    assert 15 <= running["longest_gap_ms"]["p50"] <= running["longest_gap_ms"]["max"] < 1000


async def test_a_refused_stream_is_an_error_not_a_completion(stamping_model: ModelServer) -> None:
    # The model server has no /chat/message: every stream is answered 404.
    args = parse_args(
        [
            f"--url={stamping_model.url}",
            f"--model-url={stamping_model.url}",
            "--streams=3",
            "--direct=0",
            "--ramp=0",
        ]
    )
    summary = await run(args)
    assert (summary["completed"], summary["errors"]) == (0, {"status 404": 3})
    assert summary["ttft_ms"] is None


ROLE = b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n'
CONTENT = b'data: {"choices": [{"delta": {"content": "tok "}}]}\n\n'


def test_the_first_piece_is_found_wherever_the_bytes_are_split() -> None:
    whole = ROLE + CONTENT
    content_at = len(ROLE)
    for cut in range(1, len(whole)):
        received = bytearray(whole[:cut])
        found, resume = _first_content(received, 0)
        # Found once the byte after the content's opening quote has arrived, not before.
        assert found is (cut > content_at + CONTENT.index(b'"tok') + 1), cut
        received += whole[cut:]
        assert _first_content(received, resume)[0], cut
    delta = b': ping\n\nevent: delta\ndata: {"text": "tok "}\n\n'
    marker_end = delta.index(b"data: ") + len(b"data: ")
    for cut in range(1, len(delta)):
        received = bytearray(delta[:cut])
        found, resume = _first_delta(received, 0)
        assert found is (cut >= marker_end), cut
        received += delta[cut:]
        assert _first_delta(received, resume)[0], cut


def test_a_stream_ends_with_its_last_chunk_and_a_refusal_with_its_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"d\r\nevent: done\n\n\r\n"
    assert not _complete(bytearray(head))
    assert not _complete(bytearray(head + chunk))
    assert _complete(bytearray(head + chunk + b"0\r\n\r\n"))
    refused = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n"
    assert not _complete(bytearray(refused))
    assert _complete(bytearray(refused + b"\r\n"))
    # A 200 that is not a chunked stream is not waited on past its head.
    assert _complete(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"))
