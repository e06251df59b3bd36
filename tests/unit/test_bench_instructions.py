"""bench/instructions.py: instructions per request, counted by callgrind over a fixed load."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from bench import instructions
from bench.instructions import Count, RelayCounts, message_body, parse_args, thread_totals
from tests.support.binaries import require_binary

BENCH = Path(instructions.__file__).resolve().parent


def _dump(directory: Path, name: str, total: int | None) -> None:
    body = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n"
    if total is not None:
        body += f"summary: 0\ntotals: {total}\n"
    (directory / name).write_text(body)


def test_the_counts_of_each_thread_are_summed_over_the_dumps_made_while_counting(
    tmp_path: Path,
) -> None:
    _dump(tmp_path, "cg.out.1-01", 1_000)
    _dump(tmp_path, "cg.out.1-02", 300)
    _dump(tmp_path, "cg.out.2-01", 500)
    # Written by valgrind as the server exits, after counting stopped: left out.
    _dump(tmp_path, "cg.out-01", 99_999)
    _dump(tmp_path, "cg.out", 99_999)
    _dump(tmp_path, "other.1-01", 77)
    assert thread_totals(tmp_path, "cg.out") == {1: 1_500, 2: 300}


def test_a_dump_without_totals_or_no_dump_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no callgrind dump"):
        thread_totals(tmp_path, "cg.out")
    _dump(tmp_path, "cg.out.1-01", None)
    with pytest.raises(ValueError, match="no totals line"):
        thread_totals(tmp_path, "cg.out")


def test_counts_per_request_and_per_thread() -> None:
    count = Count(requests=4, threads={1: 1_000, 2: 200, 3: 2})
    assert count.per_request == 300.5
    assert count.main_thread_per_request == 250
    assert count.summary() == {
        "requests": 4,
        "instructions_per_request": 300,  # 300.5, to the even integer
        "main_thread_per_request": 250,
        "other_threads_per_request": 50,
    }


def test_a_relays_pieces_and_set_up_come_from_its_two_reply_lengths() -> None:
    """Replies of 1 and of 21 pieces: the 20 more pieces cost the difference, and a stream
    costs its set-up plus its pieces."""
    few = Count(requests=10, threads={1: 10 * 1_500, 2: 10 * 200})
    many = Count(requests=10, threads={1: 10 * 3_500, 2: 10 * 300})
    counts = RelayCounts(few, many)
    assert counts.per_piece == (3_800 - 1_700) / 20
    assert counts.per_stream_set_up == 1_700 - 105
    assert counts.summary() == {
        "streams": 10,
        "per_stream_of_1_piece": 1_700,
        "per_stream_of_21_pieces": 3_800,
        "per_piece": 105,
        "per_stream_set_up": 1_595,
        "other_threads_per_stream": 200,
    }


def test_the_load_is_bench_post_lua_s() -> None:
    """The same body as (a)'s wrk script: a distinct message of about 100 characters, in
    conversations taken round-robin from 1,024."""
    lua = (BENCH / "post.lua").read_text()
    assert 'string.rep("lorem ipsum ", 8)' in lua
    assert "sent % 1024" in lua
    first, wrapped = json.loads(message_body(3, 5)), json.loads(message_body(0, 1_029))
    assert first == {
        "message": "bench 3-5 " + "lorem ipsum " * 8,
        "conversation_id": "bench-5",
    }
    assert wrapped["conversation_id"] == "bench-5"
    assert 100 <= len(first["message"]) <= 110


def test_scenarios_other_than_a_e_g_and_r_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--scenarios", "a, e,g,r"]).scenarios == ["a", "e", "g", "r"]
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "a,h"])
    assert "unknown scenarios: h" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--requests", "0"])


def test_only_the_counted_requests_are_counted() -> None:
    """The bare app of (e) under callgrind: three times the requests, three times the
    instructions (within 10%), so neither start-up (tens of millions of instructions) nor
    the warm-up is in the count; and it is all on the main thread, which is all (e) has."""
    require_binary("valgrind", package="valgrind")

    def counted(requests: int) -> Count:
        flags = f"--scenarios e --requests {requests} --warmup 100 --connections 4"
        args = parse_args([*flags.split(), "--python", sys.executable])
        return instructions.count_scenario("e", args)

    few, more = counted(100), counted(300)
    assert 0.9 < more.per_request / few.per_request < 1.1
    assert set(few.threads) == {1}
    # A request of (e) parses HTTP and JSON and answers: far more than a thousand
    # instructions, far fewer than ten million.
    assert 1_000 < few.per_request < 10_000_000


def test_the_load_side_gives_the_process_its_cpus_back() -> None:
    before = os.sched_getaffinity(0)
    cpu = min(before)
    with instructions.load_side(str(cpu)):
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before
