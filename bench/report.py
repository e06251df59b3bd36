"""Judge results against their targets, print the table, write ``results/latest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ScenarioResult
from bench.scenarios import REFERENCE
from bench.stream_scenario import cpu_per_chunk_us


@dataclass(frozen=True, slots=True)
class Verdict:
    failures: tuple[str, ...]
    unchecked: tuple[str, ...]  # targets that need a scenario that did not run

    @property
    def label(self) -> str:
        if self.failures:
            return "FAIL (" + ", ".join(self.failures) + ")"
        if self.unchecked:
            return "n/a (" + ", ".join(self.unchecked) + ")"
        return "PASS"


def ratio(result: ScenarioResult, reference_rps: float | None) -> float | None:
    # Streams per second of (g) do not compare with requests per second.
    if not reference_rps or result.streams is not None:
        return None
    return result.wrk.requests_per_s / reference_rps


def share_of_other(
    result: ScenarioResult, results: list[ScenarioResult]
) -> tuple[str, float | None] | None:
    """For a target that is a share of another scenario's req/s: that scenario's key, and
    ``result``'s req/s as a share of its (None when it did not run or made none)."""
    if (target := result.scenario.target.min_share_of) is None:
        return None
    key = target[0]
    other = next((r for r in results if r.scenario.key == key), None)
    if other is None or not other.wrk.requests_per_s:
        return key, None
    return key, result.wrk.requests_per_s / other.wrk.requests_per_s


def judge(result: ScenarioResult, results: list[ScenarioResult]) -> Verdict:
    """``result`` against its target; ``results`` (the whole run) holds the scenarios its
    target compares with."""
    target = result.scenario.target
    reference = reference_rps(results)
    failures: list[str] = []
    unchecked: list[str] = []
    if target.min_ratio is not None:
        share = ratio(result, reference)
        if share is None:
            unchecked.append(f"needs ({REFERENCE})")
        elif share < target.min_ratio:
            failures.append("req/s")
    if target.min_rps is not None and result.wrk.requests_per_s < target.min_rps:
        failures.append("req/s")
    if target.min_share_of is not None and (compared := share_of_other(result, results)):
        key, share = compared
        if share is None:
            unchecked.append(f"needs ({key})")
        elif share < target.min_share_of[1]:
            failures.append(f"req/s vs ({key})")
    if target.max_p99_ms is not None and result.wrk.latency_ms["p99"] > target.max_p99_ms:
        failures.append("p99")
    if target.max_added_ttft_p99_ms is not None:
        added = (result.streams or {}).get("added_ttft_ms")
        if added is None or added["p99"] > target.max_added_ttft_p99_ms:
            failures.append("added TTFT")
    if target.max_errors is not None and result.wrk.error_count > target.max_errors:
        failures.append("errors")
    if (
        target.max_rss_mb is not None
        and result.peak_rss_mb is not None
        and result.peak_rss_mb > target.max_rss_mb
    ):
        failures.append("RSS")
    return Verdict(tuple(failures), tuple(unchecked))


def reference_rps(results: list[ScenarioResult]) -> float | None:
    for result in results:
        if result.scenario.key == REFERENCE:
            return result.wrk.requests_per_s
    return None


_HEADER: tuple[str, ...] = ("", "scenario", "req/s", f"vs ({REFERENCE})", "p50 ms", "p95 ms")
_HEADER += ("p99 ms", "errors", "RSS MB", "CPU", "target", "result")
_RIGHT = {2, 3, 4, 5, 6, 7, 8, 9}


def table(results: list[ScenarioResult]) -> str:
    """The results as an aligned plain-text (and Markdown-compatible) table."""
    base = reference_rps(results)
    rows: list[tuple[str, ...]] = [_HEADER]
    for result in results:
        share = ratio(result, base)
        latency = result.wrk.latency_ms
        rows.append(
            (
                f"({result.scenario.key})",
                result.scenario.title,
                f"{result.wrk.requests_per_s:,.0f}",
                f"{share:.0%}" if share is not None else "-",
                f"{latency['p50']:.1f}",
                f"{latency['p95']:.1f}",
                f"{latency['p99']:.1f}",
                str(result.wrk.error_count),
                f"{result.peak_rss_mb:.0f}" if result.peak_rss_mb is not None else "-",
                f"{cores:.2f}" if (cores := result.server_cpu_cores) is not None else "-",
                result.scenario.target.describe(),
                judge(result, results).label,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]

    def line(cells: tuple[str, ...]) -> str:
        padded = (
            cell.rjust(widths[i]) if i in _RIGHT else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in _RIGHT else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def notes(results: list[ScenarioResult]) -> list[str]:
    """What explains the figures: group commit, store timings, spans, log volume, errors."""
    lines = []
    for result in results:
        wrk = result.wrk
        parts = [f"{wrk.requests:,} requests in {wrk.duration_s:.1f}s"]
        if (cpu_ms := result.cpu_ms_per_request) is not None:
            parts.append(f"server CPU {cpu_ms:.3f} ms per request")
        if (batch := result.average_commit_batch) and (commit_ms := result.average_commit_ms):
            parts.append(f"group commit {batch:.1f} exchanges per commit, {commit_ms:.1f} ms each")
        if select_ms := result.average_select_ms:
            selects = int(result.service_metrics.get("select_count", 0))
            parts.append(
                f"{selects:,} SELECT{'' if selects == 1 else 's'} (the rest served from memory), "
                f"{select_ms:.1f} ms each as the handler waits for it"
            )
        if result.otlp:
            parts.append(
                f"OTLP sink received {result.otlp.get('spans', 0):,} spans in "
                f"{result.otlp.get('export_requests', 0):,} exports "
                f"({result.spans_per_request or 0:.1f} per request, warm-up included)"
            )
        if dropped := result.service_metrics.get("spans_dropped"):
            parts.append(f"{dropped:.0f} spans dropped")
        if full := int(result.service_metrics.get("full_gc_count", 0)):
            parts.append(_collector_note(result.service_metrics, full))
        if result.server_output_lines:
            parts.append(
                f"stdout {result.server_output_lines:,} log lines "
                f"({result.server_output_bytes / 2**20:.1f} MB)"
            )
        if result.streams is not None:
            parts.extend(_stream_notes(result))
        if result.subscriptions is not None:
            parts.extend(_subscription_notes(result, results))
        if wrk.error_count:
            parts.append("errors " + ", ".join(f"{k} {v}" for k, v in wrk.errors.items() if v))
        if result.error_sample:
            parts.append(f"a request now answers: {result.error_sample}")
        lines.append(f"({result.scenario.key}) " + "; ".join(parts))
    return lines


def _collector_note(metrics: dict[str, float], full: int) -> str:
    """The garbage collector's pauses over the whole scenario (start-up and warm-up too)."""
    full_ms = metrics.get("full_gc_seconds_sum", 0.0) * 1000
    young_ms = (
        metrics.get("young_gc_seconds_sum", 0.0) + metrics.get("middle_gc_seconds_sum", 0.0)
    ) * 1000
    thaws = int(metrics.get("gc_thaws", 0))
    return (
        f"garbage collector: {full:,} full collection{'' if full == 1 else 's'} "
        f"({full_ms:,.0f} ms, {full_ms / full:,.1f} ms each; {thaws} of them thawing the frozen "
        f"objects), {young_ms:,.0f} ms in younger ones"
    )


def _stream_notes(result: ScenarioResult) -> list[str]:
    """Scenario (g): the table's req/s are completed streams per second, its percentiles the
    service's time to first delta; these say the rest."""
    streams = result.streams or {}
    direct = streams.get("direct") or {}
    ttft, direct_ttft = streams.get("ttft_ms") or {}, direct.get("ttft_ms") or {}
    added = streams.get("added_ttft_ms") or {}
    direct_added = direct.get("added_ms") or {}
    difference = streams.get("ttft_difference_ms") or {}
    chunks_per_s = streams["deltas"] / streams["wall_s"] if streams.get("wall_s") else 0.0
    parts = [
        f"{streams.get('completed', 0):,}/{streams.get('streams', 0):,} streams completed "
        f"(peak {streams.get('peak_open', 0):,} open, starts over {streams.get('ramp_s')} s)",
        f"TTFT p50/p99 via the service {ttft.get('p50', 0):.1f}/{ttft.get('p99', 0):.1f} ms, "
        f"direct from the model ({direct.get('completed', 0)} streams) "
        f"{direct_ttft.get('p50', 0):.1f}/{direct_ttft.get('p99', 0):.1f} ms",
        f"added TTFT p50/p99, stream by stream (its TTFT minus the model's own) "
        f"{added.get('p50', 0):.1f}/{added.get('p99', 0):.1f} ms; the same for the direct "
        f"streams {direct_added.get('p50', 0):.1f}/{direct_added.get('p99', 0):.1f} ms; the "
        f"TTFT percentiles' difference {difference.get('p50', 0):.1f}/"
        f"{difference.get('p99', 0):.1f} ms",
        f"{streams.get('deltas', 0):,} deltas relayed, {chunks_per_s:,.0f} per second",
    ]
    service_us = cpu_per_chunk_us(result.server_cpu_seconds, streams.get("completed", 0))
    if service_us is not None:
        parts.append(
            f"server CPU {result.server_cpu_seconds:.2f} s, {service_us:.0f} µs per model chunk"
        )
    if (reference := streams.get("reference")) is not None:
        reference_us = cpu_per_chunk_us(reference.get("server_cpu_s"), reference["completed"])
        reference_added = reference.get("added_ttft_ms") or {}
        part = (
            f"bare relay, same load: {reference['completed']:,}/{reference['streams']:,} "
            f"completed, added TTFT p50/p99 {reference_added.get('p50', 0):.1f}/"
            f"{reference_added.get('p99', 0):.1f} ms"
        )
        if reference_us is not None:
            part += f", {reference_us:.0f} µs per model chunk"
            if service_us is not None:
                part += f" (the service: {service_us / reference_us:.2f}x)"
        parts.append(part)
    if (running := streams.get("running")) is not None:
        bare_running = (streams.get("reference") or {}).get("running") or {}
        parts.append(
            f"{running['completed']}/{running['streams']} streams already running as they "
            f"started, their longest wait between deltas p50/p99 "
            f"{_gaps(running)} ms (bare relay: {_gaps(bare_running)} ms; the model sends a "
            f"chunk every {1000 * streams.get('model_chunk_delay_s', 0):.0f} ms)"
        )
    service_costs = streams.get("costs") or {}
    reference_costs = (streams.get("reference") or {}).get("costs") or {}
    for count, cost in service_costs.items():
        bare = reference_costs.get(count) or {}
        parts.append(
            f"at {int(count):,} streams, CPU per stream set-up "
            f"{_ratio(cost.get('setup_ms'), bare.get('setup_ms'), 'ms')}, per chunk "
            f"{_ratio(cost.get('chunk_us'), bare.get('chunk_us'), 'µs')} (service / bare relay)"
        )
    if (capacity := streams.get("capacity")) is not None:
        tried = ", ".join(
            f"{run['streams']:,}: "
            + ("not measured" if (p99 := run["added_ttft_p99_ms"]) is None else f"{p99:.1f}")
            for run in capacity["tried"]
        )
        parts.append(
            f"highest stream count meeting added TTFT p99 <= {capacity['target_ms']:g} ms: "
            f"{capacity['highest_meeting']:,} (added p99 in ms by count: {tried})"
        )
    if (at_target := streams.get("at_target")) is not None:
        runs = at_target["added_p99_ms"]
        bare = (streams.get("reference") or {}).get("at_target") or {}
        floors = [_p99s(r.get("direct_added_p99_ms", []), none="-") for r in (at_target, bare)]
        parts.append(
            f"at {at_target['streams']:,} streams, {len(runs)} runs, added TTFT p99 in ms: "
            f"service {_p99s(runs)}, bare relay {_p99s(bare.get('added_p99_ms', []))} (the "
            f"direct streams' own in the same runs: {floors[0]}; {floors[1]})"
        )
    if (total := streams.get("total_ms")) is not None:
        parts.append(f"stream duration p50/p99 {total['p50']:.0f}/{total['p99']:.0f} ms")
    if (overflows := streams.get("listen_overflows")) is not None:
        parts.append(f"{overflows:,} listen-queue overflows (machine-wide)")
    parts.append(
        f"load CPU: model server {streams.get('model_server_cpu_s', 0):.2f} s, "
        f"client {streams.get('client_cpu_s', 0):.2f} s"
    )
    return parts


def _gaps(running: dict[str, Any]) -> str:
    gaps = running.get("longest_gap_ms") or {}
    return f"{gaps.get('p50', 0):.0f}/{gaps.get('p99', 0):.0f}" if gaps else "-"


def _p99s(runs: list[float | None], none: str = "not measured") -> str:
    """Each run's p99; ``none`` for a run without one (a stream that did not complete, or
    went unmeasured)."""
    return ", ".join(none if p99 is None else f"{p99:.1f}" for p99 in runs) or "-"


def _ratio(service: float | None, bare: float | None, unit: str) -> str:
    if service is None or bare is None:
        return "not measured (a stream did not complete)"
    ratio = f" = {service / bare:.2f}x" if bare > 0 else ""
    return f"{service:.3g} / {bare:.3g} {unit}{ratio}"


def _subscription_notes(result: ScenarioResult, results: list[ScenarioResult]) -> list[str]:
    """Scenario (h): the subscriptions held beside the load, their memory, the cost."""
    held = result.subscriptions or {}
    end = held.get("held") or {}
    parts = [
        f"{end.get('open_at_end', 0):,} of {held.get('open', 0):,} idle subscriptions held to "
        f"the end (opened in {held.get('opening_s', 0):.1f} s; failed {held.get('failed') or 0}, "
        f"ended early {end.get('ended_early') or 0})"
    ]
    if (per := held.get("bytes_per_subscription")) is not None:
        parts.append(
            f"service RSS {held['service_rss_before_mb']:.0f} -> "
            f"{held['service_rss_held_mb']:.0f} MB: {per / 1024:.1f} KiB per subscription"
        )
    if (compared := share_of_other(result, results)) and compared[1] is not None:
        parts.append(f"{compared[1]:.0%} of ({compared[0]})'s req/s")
    return parts


def to_json(results: list[ScenarioResult], run: dict[str, Any]) -> dict[str, Any]:
    base = reference_rps(results)
    scenarios = []
    for result in results:
        scenario = result.scenario
        verdict = judge(result, results)
        share = ratio(result, base)
        scenarios.append(
            {
                "key": scenario.key,
                "title": scenario.title,
                "request": f"{scenario.method} {scenario.path}",
                "server": scenario.server.value,
                "tracing": scenario.tracing,
                "seed_exchanges": scenario.seed_exchanges,
                "seed_seconds": round(result.seed_seconds, 2),
                "requests": result.wrk.requests,
                "warmup_requests": result.warmup_requests,
                "duration_s": round(result.wrk.duration_s, 3),
                "requests_per_s": round(result.wrk.requests_per_s, 1),
                "ratio_to_reference": round(share, 3) if share is not None else None,
                "latency_ms": {k: round(v, 3) for k, v in result.wrk.latency_ms.items()},
                "errors": {**result.wrk.errors, "total": result.wrk.error_count},
                "bytes_read": result.wrk.bytes_read,
                "peak_rss_mb": round(result.peak_rss_mb, 1) if result.peak_rss_mb else None,
                "server_cpu_cores": result.server_cpu_cores,
                "server_cpu_ms_per_request": result.cpu_ms_per_request,
                "server_output": {
                    "lines": result.server_output_lines,
                    "bytes": result.server_output_bytes,
                },
                "server_exit_status": result.server_exit_status,
                "load_average_before": list(result.load_average_before),
                "service_metrics": result.service_metrics,
                "average_commit_batch": result.average_commit_batch,
                "average_commit_ms": result.average_commit_ms,
                "average_select_ms": result.average_select_ms,
                "otlp_spans_per_request": result.spans_per_request,
                "otlp_sink": result.otlp or None,
                "target": scenario.target.describe(),
                "passed": not verdict.failures and not verdict.unchecked,
                "failures": list(verdict.failures),
                "error_sample": result.error_sample,
                "wrk_output": result.wrk.output if result.streams is None else None,
                "streams": result.streams,
                "subscriptions": result.subscriptions,
            }
        )
    return {**run, "scenarios": scenarios}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
