"""The alert rules and the dashboard query metrics the running service really exposes."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import StartService
from tests.deploy.stack import REPO, load_yaml

SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def queried_service_metrics() -> set[str]:
    """Metric names in the rules and the dashboard that select job="chat-service"."""
    expressions = [
        rule["expr"]
        for path in sorted((REPO / "observability" / "rules").glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads(
        (REPO / "observability/grafana/dashboards/chat-service.json").read_text()
    )
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = set()
    for expr in expressions:
        for match in SELECTOR.finditer(expr):
            selector = expr[match.end() : expr.index("}", match.end())]
            if 'job="chat-service"' in selector and match.group(1) != "up":
                names.add(match.group(1))
    return names


@pytest.mark.integration
def test_every_queried_metric_is_exposed_by_the_service(start_service: StartService) -> None:
    queried = queried_service_metrics()
    assert {
        "http_server_request_duration_seconds_bucket",
        "chat_store_commit_batch_size_bucket",
    } <= queried
    service = start_service()
    status, _, body = service.request("GET", "/metrics")
    assert status == 200
    exposed = {
        base_name(line.split()[2]) for line in body.splitlines() if line.startswith("# TYPE ")
    }
    missing = sorted(name for name in queried if base_name(name) not in exposed)
    assert missing == []
