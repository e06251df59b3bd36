"""observability/prometheus.yml and its alert rules, checked and unit-tested by promtool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import REPO, load_yaml, run
from tests.support.binaries import require_binary

CONFIG = REPO / "observability" / "prometheus.yml"
RULES = sorted((REPO / "observability" / "rules").glob("*.yml"))
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
# The model's alerts and how long each condition must hold before it fires.
MODEL_ALERTS = {
    "ChatServiceModelErrors": "5m",
    "ChatServiceModelSlowFirstChunk": "10m",
    "ChatServiceModelRetrying": "10m",
}


def alert_rules() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in RULES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", package="prometheus")


def test_promtool_accepts_the_config(promtool: str) -> None:
    result = run(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_rules(promtool: str) -> None:
    assert RULES
    result = run(promtool, "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_synthetic_series(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_cover_every_alert() -> None:
    defined = set(alert_rules())
    cases = [
        case for test in load_yaml(ALERT_TESTS)["tests"] for case in test.get("alert_rule_test", [])
    ]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert {"ChatServiceDown", "ChatServiceHighErrorRatio", "ChatServiceHighLatencyP99"} <= defined
    assert MODEL_ALERTS.keys() <= defined
    assert any("SpansDropped" in name for name in defined)
    # Each alert fires on some series, and stays quiet on others (or before its `for`).
    assert firing == defined
    assert quiet == defined


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_the_model_alerts_wait_before_firing() -> None:
    rules = alert_rules()
    for name, duration in MODEL_ALERTS.items():
        assert rules[name]["for"] == duration, name
        assert rules[name]["labels"]["severity"] == "warning", name


def test_scrape_targets_are_found_as_the_scrape_test_expects() -> None:
    """Each chat-service replica is found by DNS (one address per replica), the collector is
    a static target; the scrape test (tests/integration/test_metrics.py) points the
    chat-service job at a loopback port instead, so keep both trivial."""
    jobs = {job["job_name"]: job for job in load_yaml(CONFIG)["scrape_configs"]}
    chat = jobs["chat-service"]
    assert chat.get("metrics_path", "/metrics") == "/metrics"
    assert chat["dns_sd_configs"] == [
        {"names": ["chat-service-replicas"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    assert "static_configs" not in chat
    assert jobs["otel-collector"]["static_configs"] == [{"targets": ["otel-collector:8888"]}]


def test_losing_every_replica_is_an_alert_of_its_own() -> None:
    """With DNS discovery, no replica means no target and no `up` series at all: `up == 0`
    cannot fire, `absent()` does."""
    rules = alert_rules()
    assert rules["ChatServiceDown"]["expr"].strip() == 'up{job="chat-service"} == 0'
    assert rules["ChatServiceAbsent"]["expr"].strip() == 'absent(up{job="chat-service"})'
    assert rules["ChatServiceAbsent"]["labels"]["severity"] == "critical"
