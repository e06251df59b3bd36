"""Scenario (g)'s arithmetic and report (bench/stream_scenario.py, bench/report.py): the CPU
split into set-up and chunks, when the added TTFT counts as measured, and the notes that say
which figure is which. Every expected figure is worked out here by hand."""

from __future__ import annotations

import pytest

from bench.common import ScenarioResult
from bench.report import notes
from bench.scenarios import SCENARIOS
from bench.stream_scenario import COST_REPEATS, MODEL_CHUNKS, added_ttft_ms, setup_and_chunk
from bench.wrk import WrkResult


def test_set_up_and_chunk_costs_are_split_from_short_and_long_runs() -> None:
    # 50 streams, three times: 150 one-chunk streams took 0.3 s of CPU; the 50-chunk ones
    # 49 * 150 chunks more at 100 µs each, 0.735 s more. So 100 µs per chunk, and the
    # one-chunk streams' 2 ms each less their one chunk: 1.9 ms of set-up.
    assert (COST_REPEATS, MODEL_CHUNKS) == (3, 50)
    assert setup_and_chunk(0.3, 1.035, 50) == {"setup_ms": 1.9, "chunk_us": 100.0}
    assert setup_and_chunk(None, 1.035, 50) == {"setup_ms": None, "chunk_us": None}
    assert setup_and_chunk(0.3, None, 50) == {"setup_ms": None, "chunk_us": None}


def test_the_added_ttft_counts_only_when_every_completed_stream_was_measured() -> None:
    added = {"p50": 1.5, "p90": 3.0, "p95": 4.0, "p99": 8.25, "max": 20.0}
    measured = {"completed": 10, "stamped": 10, "added_ms": added}
    assert added_ttft_ms(measured) == {"p50": 1.5, "p99": 8.25}
    assert added_ttft_ms({**measured, "stamped": 9}) is None
    # A stream that failed after its first piece was measured without completing.
    assert added_ttft_ms({**measured, "stamped": 11}) == {"p50": 1.5, "p99": 8.25}
    assert added_ttft_ms({"completed": 0, "stamped": 0, "added_ms": None}) is None


def _result(streams: dict[str, object]) -> ScenarioResult:
    return ScenarioResult(
        scenario=SCENARIOS["g"],
        wrk=WrkResult(
            requests=100,
            duration_s=4.0,
            bytes_read=0,
            errors={"incomplete_streams": 0},
            latency_ms={"p50": 52.0, "p95": 60.0, "p99": 70.0},
            output="",
        ),
        warmup_requests=50,
        peak_rss_mb=100.0,
        server_output_bytes=0,
        server_output_lines=0,
        server_exit_status=0,
        load_average_before=(0.0, 0.0, 0.0),
        server_cpu_seconds=0.5,
        streams=streams,
    )


@pytest.fixture
def summary() -> dict[str, object]:
    return {
        "streams": 100,
        "completed": 100,
        "deltas": 5000,
        "wall_s": 4.0,
        "ramp_s": 1.0,
        "peak_open": 100,
        "ttft_ms": {"p50": 52.0, "p99": 70.0},
        "added_ttft_ms": {"p50": 1.5, "p99": 8.25},
        "ttft_difference_ms": {"p50": 0.5, "p99": -2.0},
        "direct": {
            "completed": 10,
            "ttft_ms": {"p50": 51.0, "p99": 72.0},
            "added_ms": {"p50": 0.5, "p99": 3.5},
        },
        "reference": {
            "streams": 100,
            "completed": 100,
            "server_cpu_s": 0.25,
            "added_ttft_ms": {"p50": 1.0, "p99": 4.0},
            "costs": {"50": {"setup_ms": 0.8, "chunk_us": 60.0}},
            "running": {"streams": 100, "completed": 100, "longest_gap_ms": None},
            "at_target": {"added_p99_ms": [6.0, None], "direct_added_p99_ms": [2.0, None]},
        },
        "costs": {"50": {"setup_ms": 2.0, "chunk_us": 75.0}},
        "model_chunk_delay_s": 0.05,
        "running": {
            "streams": 100,
            "completed": 99,
            "longest_gap_ms": {"p50": 61.0, "p99": 180.4, "max": 200.0},
        },
        "at_target": {
            "streams": 500,
            "added_p99_ms": [12.5, None],
            "direct_added_p99_ms": [3.0, 4.0],
        },
    }


def test_the_notes_say_which_added_time_is_which(summary: dict[str, object]) -> None:
    (line,) = notes([_result(summary)])
    assert "stream by stream (its TTFT minus the model's own) 1.5/8.2 ms" in line
    assert "the same for the direct streams 0.5/3.5 ms" in line
    assert "the TTFT percentiles' difference 0.5/-2.0 ms" in line
    # 0.5 s over 100 streams of 50 chunks: 100 µs; the bare relay's 0.25 s: 50 µs.
    assert "100 µs per model chunk" in line
    assert "50 µs per model chunk (the service: 2.00x)" in line
    assert "set-up 2 / 0.8 ms = 2.50x, per chunk 75 / 60 µs = 1.25x" in line
    assert (
        "99/100 streams already running as they started, their longest wait between deltas "
        "p50/p99 61/180 ms (bare relay: - ms; the model sends a chunk every 50 ms)"
    ) in line
    assert (
        "at 500 streams, 2 runs, added TTFT p99 in ms: service 12.5, not measured, "
        "bare relay 6.0, not measured (the direct streams' own in the same runs: 3.0, 4.0; 2.0, -)"
    ) in line
