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


@pytest.fixture(scope="module")
def dashboard() -> Doc:
    doc: Doc = json.loads(DASHBOARD.read_text())
    return doc


@pytest.fixture(scope="module")
def datasources() -> dict[str, Doc]:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")
    sources: list[Doc] = provisioned["datasources"]
    return {source["uid"]: source for source in sources}


def expressions(dashboard: Doc) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


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

    retries, streams = panel_titled(dashboard, "retries and open streams")["targets"]
    assert "rate(chat_model_retries_total" in retries["expr"]
    assert streams["expr"] == 'sum(chat_streams_open{job="chat-service"})'

    cache = panel_titled(dashboard, "cache hit ratio")
    assert 'result="hit"' in cache["targets"][0]["expr"]
    assert cache["fieldConfig"]["defaults"]["unit"] == "percentunit"


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
    for panel in dashboard["panels"]:
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
