"""The alert rules and the dashboard query metrics the running service really exposes."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import StartService
from tests.deploy.stack import REPO, load_yaml
from tests.support.model import ModelServer

SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\bby \(([^)]*)\)")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$")
LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')
# The model's metrics, which the dashboard's assistant row and the model alerts query.
MODEL_METRICS = {
    "gen_ai_client_operation_duration_seconds_count",
    "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
    "gen_ai_client_token_usage_sum",
    "chat_model_retries_total",
    "chat_streams_open",
    "chat_reply_cache_requests_total",
}
# Labels Prometheus adds to what it scrapes, and the histogram bucket bound.
ADDED_LABELS = {"job", "instance", "le"}


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def queried_expressions() -> list[str]:
    """Every expression of the rules and of the dashboard's panels."""
    expressions = [
        rule["expr"]
        for path in sorted((REPO / "observability" / "rules").glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads(
        (REPO / "observability/grafana/dashboards/chat-service.json").read_text()
    )
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    return expressions


def service_selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, selector text) of each selector with job="chat-service" in ``expr``."""
    found = []
    for match in SELECTOR.finditer(expr):
        selector = expr[match.end() : expr.index("}", match.end())]
        if 'job="chat-service"' in selector and match.group(1) != "up":
            found.append((match.group(1), selector))
    return found


def queried_service_metrics() -> set[str]:
    """Metric names in the rules and the dashboard that select job="chat-service"."""
    return {name for expr in queried_expressions() for name, _ in service_selectors(expr)}


def exposed_labels(body: str) -> dict[str, dict[str, set[str]]]:
    """metric (sample name) -> label -> the values its samples carry."""
    exposed: dict[str, dict[str, set[str]]] = {}
    for line in body.splitlines():
        if line.startswith("#") or not (sample := SAMPLE.fullmatch(line)):
            continue
        labels = exposed.setdefault(sample.group(1), {})
        for name, value in LABEL.findall(sample.group(2) or ""):
            labels.setdefault(name, set()).add(value)
    return exposed


@pytest.mark.integration
def test_every_queried_metric_is_exposed_by_the_service(start_service: StartService) -> None:
    queried = queried_service_metrics()
    assert {
        "http_server_request_duration_seconds_bucket",
        "chat_store_commit_batch_size_bucket",
        *MODEL_METRICS,
    } <= queried
    service = start_service()
    status, _, body = service.request("GET", "/metrics")
    assert status == 200
    exposed = {
        base_name(line.split()[2]) for line in body.splitlines() if line.startswith("# TYPE ")
    }
    missing = sorted(name for name in queried if base_name(name) not in exposed)
    assert missing == []


@pytest.mark.integration
def test_every_queried_label_and_value_is_one_the_service_emits(
    start_service: StartService, model_server: ModelServer
) -> None:
    """Driven through a retry, a reply, a cache hit and a model failure, the service's
    samples carry every label the queries filter or group by, with the values they ask for:
    a query on a label the service does not emit shows nothing, and never fails."""
    model_server.script(
        {"status": 429, "retry_after": 0},  # retried, then the default: a reply
        {},
        {"status": 500},  # and its retry: the model fails for good
        {"status": 500},
    )
    service = start_service(
        env=model_server.openai_env(CHAT_REPLY_CACHE_TTL_S="60", CHAT_MODEL_MAX_RETRIES="1")
    )
    for conversation, message, expected in (("a", "hi", 200), ("b", "hi", 200), ("c", "x", 500)):
        status, _, _ = service.request(
            "POST", "/chat/message", {"message": message, "conversation_id": conversation}
        )
        assert status == expected, conversation
    assert service.request("GET", "/chat/history?limit=5")[0] == 200
    assert len(model_server.requests()) == 4, "the second message was a cache hit"
    status, _, body = service.request("GET", "/metrics")
    assert status == 200
    exposed = exposed_labels(body)

    checked: set[tuple[str, str, str]] = set()
    for expr in queried_expressions():
        grouped = {
            label.strip() for clause in GROUPING.findall(expr) for label in clause.split(",")
        } - ADDED_LABELS
        for metric, selector in service_selectors(expr):
            labels = exposed.get(metric)
            assert labels is not None, f"{metric} has no samples"
            assert grouped <= labels.keys(), (metric, grouped - labels.keys())
            for label, operator, value in MATCHER.findall(selector):
                if label in ADDED_LABELS:
                    continue
                values = labels.get(label, set())
                matching = {
                    "=": {v for v in values if v == value},
                    "!=": {v for v in values if v != value},
                    "=~": {v for v in values if re.fullmatch(value, v)},
                    "!~": {v for v in values if not re.fullmatch(value, v)},
                }[operator]
                assert matching, f"{metric}{{{label}{operator}{value!r}}}: emitted {values}"
                checked.add((label, operator, value))
    assert {
        ("gen_ai_token_type", "=", "output"),
        ("result", "=", "hit"),
        ("error_type", "!=", ""),
        ("http_response_status_code", "=~", "5.."),
    } <= checked
