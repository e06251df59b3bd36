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
        ("assistant latency", "gen_ai_client_operation_duration_seconds_bucket"),
    ):
        panel = panel_titled(dashboard, words)
        quantiles = {quantile_of(t["expr"]) for t in panel["targets"]}
        assert quantiles == {"0.5", "0.95", "0.99"}
        assert all(metric in t["expr"] and t["exemplar"] is True for t in panel["targets"])
    assert (
        "chat_store_commit_batch_size"
        in panel_titled(dashboard, "batch size")["targets"][0]["expr"]
    )


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
