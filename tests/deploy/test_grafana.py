"""Grafana: provisioned data sources and the chat-service dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.stack import REPO, Doc, load_yaml, run
from tests.support.binaries import require_binary

GRAFANA = REPO / "observability" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "chat-service.json"

# The assistant's row: a few words of each panel's title, and its unit.
MODEL_PANELS = {
    "time to first chunk": "s",
    "output tokens per second": "count:tok/s",
    "token usage by model": "count:tok/min",
    "model errors by type": "ops",
    "model retries": "ops",
    "open reply streams": "short",
    "reply cache hit ratio": "percentunit",
}
# Labels a query may group by or print: bounded ones (route templates, outcomes, models,
# token types, error types), never an id, a path or user text.
BOUNDED_LABELS = {
    "le",
    "http_route",
    "outcome",
    "db_operation_name",
    "gen_ai_request_model",
    "gen_ai_token_type",
    "error_type",
}


@pytest.fixture(scope="module")
def dashboard() -> Doc:
    doc: Doc = json.loads(DASHBOARD.read_text())
    return doc


@pytest.fixture(scope="module")
def datasources() -> dict[str, Doc]:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")
    sources: list[Doc] = provisioned["datasources"]
    return {source["uid"]: source for source in sources}


def graphs(dashboard: Doc) -> list[Doc]:
    """The panels that query something (rows only group them)."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def expressions(dashboard: Doc) -> list[str]:
    return [target["expr"] for panel in graphs(dashboard) for target in panel["targets"]]


def quantile_of(expr: str) -> str:
    match = re.match(r"histogram_quantile\(([\d.]+),", expr)
    assert match, expr
    return match.group(1)


def panel_titled(dashboard: Doc, words: str) -> Doc:
    found: list[Doc] = [p for p in dashboard["panels"] if words.lower() in p["title"].lower()]
    assert len(found) == 1, f"expected one panel about {words!r}"
    return found[0]


def test_prometheus_exemplars_link_to_the_jaeger_data_source(
    datasources: dict[str, Doc], compose_file: Doc
) -> None:
    prometheus, jaeger = datasources["prometheus"], datasources["jaeger"]
    assert (prometheus["type"], jaeger["type"]) == ("prometheus", "jaeger")
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "jaeger"}
    ]
    # The URLs are compose service names and the ports those services listen on.
    for source, port in ((prometheus, 9090), (jaeger, 16686)):
        host = source["url"].removeprefix("http://").split(":")[0]
        assert host in compose_file["services"]
        assert source["url"] == f"http://{host}:{port}"


def test_the_dashboard_shows_what_the_issue_asks_for(dashboard: Doc) -> None:
    assert dashboard["uid"] == "chat-service"
    rate = panel_titled(dashboard, "request rate")
    assert "rate(http_server_request_duration_seconds_count" in rate["targets"][0]["expr"]
    errors = panel_titled(dashboard, "error ratio")
    assert 'http_response_status_code=~"5.."' in errors["targets"][0]["expr"]
    for words, metric in (
        ("request latency", "http_server_request_duration_seconds_bucket"),
        ("model call duration", "gen_ai_client_operation_duration_seconds_bucket"),
    ):
        panel = panel_titled(dashboard, words)
        quantiles = {quantile_of(t["expr"]) for t in panel["targets"]}
        assert quantiles == {"0.5", "0.95", "0.99"}
        assert all(metric in t["expr"] and t["exemplar"] is True for t in panel["targets"])
    assert (
        "chat_store_commit_batch_size"
        in panel_titled(dashboard, "batch size")["targets"][0]["expr"]
    )


def test_the_dashboard_shows_the_model(dashboard: Doc) -> None:
    first_chunk = panel_titled(dashboard, "time to first chunk")
    assert {quantile_of(t["expr"]) for t in first_chunk["targets"]} == {"0.5", "0.95"}
    for target in first_chunk["targets"]:
        assert "gen_ai_client_operation_time_to_first_chunk_seconds_bucket" in target["expr"]
        assert "by (le, gen_ai_request_model)" in target["expr"]
        assert target["exemplar"] is True
    assert first_chunk["fieldConfig"]["defaults"]["unit"] == "s"

    [tokens_per_second] = panel_titled(dashboard, "tokens per second")["targets"]
    assert tokens_per_second["expr"].startswith("sum by (gen_ai_request_model) (rate(")
    assert (
        'gen_ai_client_token_usage_sum{job="chat-service", gen_ai_token_type="output"}'
        in (tokens_per_second["expr"])
    )

    [usage] = panel_titled(dashboard, "token usage by model")["targets"]
    assert "by (gen_ai_request_model, gen_ai_token_type)" in usage["expr"]
    assert "gen_ai_client_token_usage_sum" in usage["expr"]

    [errors] = panel_titled(dashboard, "model errors by type")["targets"]
    assert errors["expr"].startswith("sum by (error_type) (rate(")
    assert (
        'gen_ai_client_operation_duration_seconds_count{job="chat-service", error_type!=""}'
        in (errors["expr"])
    )

    [retries] = panel_titled(dashboard, "model retries")["targets"]
    assert retries["expr"].startswith("sum by (gen_ai_request_model) (rate(")
    assert 'chat_model_retries_total{job="chat-service"}' in retries["expr"]

    [streams] = panel_titled(dashboard, "open reply streams")["targets"]
    assert streams["expr"] == 'sum(chat_streams_open{job="chat-service"})'

    [cache] = panel_titled(dashboard, "cache hit ratio")["targets"]
    hits, _, lookups = cache["expr"].partition(" / ")
    assert 'chat_reply_cache_requests_total{job="chat-service", result="hit"}' in hits
    # Over every lookup, hits and misses: no result filter below the line.
    assert 'chat_reply_cache_requests_total{job="chat-service"}' in lookups


def test_the_model_panels_have_their_units(dashboard: Doc) -> None:
    for words, unit in MODEL_PANELS.items():
        assert panel_titled(dashboard, words)["fieldConfig"]["defaults"]["unit"] == unit, words
    cache = panel_titled(dashboard, "reply cache hit ratio")["fieldConfig"]["defaults"]
    assert (cache["min"], cache["max"]) == (0, 1)


def test_the_model_panels_are_a_row_of_their_own(dashboard: Doc) -> None:
    [row] = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert "assistant" in row["title"].lower()
    assert row["collapsed"] is False
    assert row["gridPos"] == {"x": 0, "y": row["gridPos"]["y"], "w": 24, "h": 1}
    below = {
        panel["title"].lower()
        for panel in graphs(dashboard)
        if panel["gridPos"]["y"] > row["gridPos"]["y"]
    }
    assert len(below) == len(MODEL_PANELS)
    for words in MODEL_PANELS:
        assert any(words in title for title in below), words
    # An expanded row is followed by its panels in the list, as Grafana saves it.
    position = dashboard["panels"].index(row)
    assert len(dashboard["panels"]) == position + 1 + len(MODEL_PANELS)


def test_queries_group_by_and_print_bounded_labels_only(dashboard: Doc) -> None:
    grouped: set[str] = set()
    for panel in graphs(dashboard):
        for target in panel["targets"]:
            for clause in re.findall(r"\b(?:by|without) \(([^)]*)\)", target["expr"]):
                grouped |= {label.strip() for label in clause.split(",")}
            printed = set(re.findall(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}", target["legendFormat"]))
            assert printed <= BOUNDED_LABELS, (panel["title"], printed)
            assert " without (" not in target["expr"], "without keeps every other label"
    assert grouped <= BOUNDED_LABELS, grouped - BOUNDED_LABELS
    assert {"gen_ai_request_model", "gen_ai_token_type", "error_type"} <= grouped


def test_every_selector_names_its_scrape_job(dashboard: Doc) -> None:
    selectors = re.findall(
        r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}", "\n".join(expressions(dashboard))
    )
    assert len(selectors) >= 20
    for selector in selectors:
        assert re.match(r'job="(chat-service|otel-collector)"', selector), selector


def test_panels_do_not_overlap(dashboard: Doc) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert not area & cells, f"{panel['title']!r} overlaps another panel"
        cells |= area
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_queries_the_provisioned_prometheus(
    dashboard: Doc, datasources: dict[str, Doc]
) -> None:
    for panel in graphs(dashboard):
        assert panel["datasource"]["uid"] in datasources
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}


def test_every_dashboard_query_is_valid_promql(dashboard: Doc, tmp_path: Path) -> None:
    promtool = require_binary("promtool", package="prometheus")
    rules: list[dict[str, Any]] = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(expressions(dashboard))
    ]
    assert len(rules) >= 8
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_provider_reads_the_directory_compose_mounts(compose_file: Doc) -> None:
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"][0]
    mounts = {
        target: source
        for source, target, *_ in (
            v.split(":") for v in compose_file["services"]["grafana"]["volumes"]
        )
    }
    assert mounts[provider["options"]["path"]] == "./observability/grafana/dashboards"


# Synthetic series for the model panels, one sample a minute: two models, one other scrape
# job whose series must not count, and per-minute increases chosen so that each panel's value
# is known exactly (rates are per second over the 5m window the test substitutes).
TOKENS = "gen_ai_client_token_usage_sum"
CALLS = "gen_ai_client_operation_duration_seconds_count"
FIRST_CHUNK = "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"


def series(metric: str, job: str = "chat-service", **labels: str) -> str:
    """A promtool input series name: the metric and its labels, job first."""
    pairs = ", ".join(f'{name}="{value}"' for name, value in {"job": job, **labels}.items())
    return f"{metric}{{{pairs}}}"


MODEL_SERIES = {
    # m1: 3,000 output and 6,000 input tokens a minute; m2: 600 output tokens a minute.
    series(TOKENS, gen_ai_request_model="m1", gen_ai_token_type="output"): "0+3000x20",
    series(TOKENS, gen_ai_request_model="m1", gen_ai_token_type="input"): "0+6000x20",
    series(TOKENS, gen_ai_request_model="m2", gen_ai_token_type="output"): "0+600x20",
    series(
        TOKENS, job="elsewhere", gen_ai_request_model="m1", gen_ai_token_type="output"
    ): "0+99999x20",
    # 60 successful calls a minute, 6 rate-limited and 12 timed out (after retries).
    series(CALLS, gen_ai_request_model="m1", error_type=""): "0+60x20",
    series(CALLS, gen_ai_request_model="m1", error_type="RateLimitError"): "0+6x20",
    series(CALLS, gen_ai_request_model="m2", error_type="APITimeoutError"): "0+12x20",
    # 30 retries a minute, all of m1.
    series(
        "chat_model_retries_total", gen_ai_provider_name="openai", gen_ai_request_model="m1"
    ): "0+30x20",
    # Two replicas streaming 3 and 2 replies.
    series("chat_streams_open", instance="a:8000"): "3x20",
    series("chat_streams_open", instance="b:8000"): "2x20",
    # One lookup in four is a hit.
    series("chat_reply_cache_requests_total", result="hit"): "0+60x20",
    series("chat_reply_cache_requests_total", result="miss"): "0+180x20",
    # m1 starts every reply between 0.64 s and 1.28 s.
    series(FIRST_CHUNK, gen_ai_request_model="m1", le="0.64"): "0+0x20",
    series(FIRST_CHUNK, gen_ai_request_model="m1", le="1.28"): "0+100x20",
    series(FIRST_CHUNK, gen_ai_request_model="m1", le="+Inf"): "0+100x20",
}
# (panel title words, target index) -> {result labels: value}.
MODEL_VALUES: dict[tuple[str, int], dict[str, float]] = {
    # Linear interpolation inside the (0.64, 1.28] bucket.
    ("time to first chunk", 0): {'{gen_ai_request_model="m1"}': 0.64 + 0.64 * 0.5},
    ("time to first chunk", 1): {'{gen_ai_request_model="m1"}': 0.64 + 0.64 * 0.95},
    ("output tokens per second", 0): {
        '{gen_ai_request_model="m1"}': 50,
        '{gen_ai_request_model="m2"}': 10,
    },
    ("token usage by model", 0): {
        '{gen_ai_request_model="m1", gen_ai_token_type="output"}': 3000,
        '{gen_ai_request_model="m1", gen_ai_token_type="input"}': 6000,
        '{gen_ai_request_model="m2", gen_ai_token_type="output"}': 600,
    },
    ("model errors by type", 0): {
        '{error_type="RateLimitError"}': 0.1,
        '{error_type="APITimeoutError"}': 0.2,
    },
    ("model retries", 0): {'{gen_ai_request_model="m1"}': 0.5},
    ("open reply streams", 0): {"{}": 5},
    ("reply cache hit ratio", 0): {"{}": 0.25},
}


def test_the_model_panels_compute_what_their_titles_say(dashboard: Doc, tmp_path: Path) -> None:
    """Each model panel's queries, run by promtool over synthetic series, give the values
    written above: the right metric, filter, grouping, quantile and scale."""
    promtool = require_binary("promtool", package="prometheus")
    rules: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for number, ((words, index), values) in enumerate(MODEL_VALUES.items()):
        expr = panel_titled(dashboard, words)["targets"][index]["expr"]
        name = f"panel:model_{number}"
        rules.append({"record": name, "expr": expr.replace("$__rate_interval", "5m")})
        samples.append(
            {
                "expr": name,
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": name + labels, "value": value} for labels, value in values.items()
                ],
            }
        )
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]})
    )
    tests = {
        "rule_files": ["panels.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series, "values": values} for series, values in MODEL_SERIES.items()
                ],
                "promql_expr_test": samples,
            }
        ],
    }
    (tmp_path / "panels_test.yml").write_text(yaml.safe_dump(tests))
    result = run(promtool, "test", "rules", "panels_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
