"""``/metrics`` as Prometheus sees it: promtool, the OpenMetrics parser, a real scrape."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import StartService
from tests.support.binaries import require_binary
from tests.support.metrics import samples
from tests.support.otlp import OtlpHttpReceiver
from tests.support.service import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[2]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(service: ServiceProcess, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(
        f"{service.base_url}/metrics", headers={"Accept": accept} if accept else {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def drive_traffic(service: ServiceProcess) -> str:
    """A success, a 400, a 404 and a history read; returns the POST's trace id."""
    _, headers, _ = service.request("POST", "/chat/message", {"message": "hi"})
    service.request("POST", "/chat/message", {"message": ""})
    service.request("GET", "/users/raw-path-marker/private")
    service.request("GET", "/chat/history?limit=5")
    return headers["traceresponse"].split("-")[1]


@pytest.fixture
def exporting(start_service: StartService) -> Iterator[StartService]:
    """Start services whose traces are exported (and so sampled: exemplars need that)."""
    with OtlpHttpReceiver() as receiver:

        def start() -> ServiceProcess:
            return start_service(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})

        yield start


@pytest.fixture
def busy_service(exporting: StartService) -> tuple[ServiceProcess, str]:
    service = exporting()
    return service, drive_traffic(service)


def test_no_exemplars_without_exported_traces(start_service: StartService) -> None:
    """They would link to traces that never left the process."""
    service = start_service()
    drive_traffic(service)
    _, text = scrape(service, OPENMETRICS)
    assert "# {" not in text


def test_text_format_passes_promtool(busy_service: tuple[ServiceProcess, str]) -> None:
    promtool = require_binary("promtool", package="prometheus")
    service, _ = busy_service
    content_type, text = scrape(service)
    assert content_type.startswith("text/plain; version=0.0.4")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_openmetrics_format_parses_strictly_with_exemplars(
    busy_service: tuple[ServiceProcess, str],
) -> None:
    service, trace_id = busy_service
    content_type, text = scrape(service, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exemplars = [
        sample.exemplar
        for sample in families["http_server_request_duration_seconds"].samples
        if sample.exemplar is not None
    ]
    assert trace_id in {exemplar.labels["trace_id"] for exemplar in exemplars}
    genai = families["gen_ai_client_operation_duration_seconds"].samples
    assert any(s.exemplar and s.exemplar.labels["trace_id"] == trace_id for s in genai)


def test_red_metrics_are_labelled_by_route_template(
    busy_service: tuple[ServiceProcess, str],
) -> None:
    service, _ = busy_service
    _, text = scrape(service, OPENMETRICS)
    counts = {
        (s["http_request_method"], s["http_route"], s["http_response_status_code"]): float(
            s["value"]
        )
        for s in samples(text, "http_server_request_duration_seconds_count")
    }
    assert counts[("POST", "/chat/message", "200")] == 1
    assert counts[("POST", "/chat/message", "400")] == 1
    assert counts[("GET", "/chat/history", "200")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    # (A word, not digits: a sample's timestamp may hold any digits.)
    assert "raw-path-marker" not in text, "raw paths never become label values"
    assert "users" not in text
    in_flight = {
        s["http_route"]: float(s["value"]) for s in samples(text, "http_server_active_requests")
    }
    assert in_flight["/chat/message"] == 0, "every request counted in has been counted out"
    assert in_flight["/metrics"] == 1, "the scrape itself is in flight while it is answered"


def test_chat_metrics(busy_service: tuple[ServiceProcess, str]) -> None:
    service, _ = busy_service
    _, text = scrape(service, OPENMETRICS)
    stored = {s["outcome"]: float(s["value"]) for s in samples(text, "chat_exchanges_total")}
    assert stored == {"stored": 1.0, "failed": 0.0}
    tokens = {s["gen_ai_token_type"] for s in samples(text, "gen_ai_client_token_usage_count")}
    assert tokens == {"input", "output"}
    assert float(samples(text, "chat_store_commit_batch_size_count")[0]["value"]) == 1
    operations = {
        s["db_operation_name"] for s in samples(text, "chat_store_operation_duration_seconds_count")
    }
    assert operations == {"SELECT", "BATCH INSERT"}
    (build,) = samples(text, "chat_service_build_info")
    assert build["version"]
    assert samples(text, "process_resident_memory_bytes")
    assert samples(text, "python_info")


def test_unknown_methods_collapse_to_other(start_service: StartService) -> None:
    service = start_service()
    assert service.request("PROPFIND", "/chat/history")[0] == 405
    _, text = scrape(service, OPENMETRICS)
    methods = {
        s["http_request_method"]
        for s in samples(text, "http_server_request_duration_seconds_count")
    }
    assert "_OTHER" in methods
    assert "PROPFIND" not in methods


def prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def render_prometheus_config(target_dir: Path, service_port: int) -> Path:
    """observability/ as compose and k8s use it, with the chat-service job scraping our port
    (instead of the replicas it finds by DNS there)."""
    shutil.copytree(REPO / "observability", target_dir)
    config_path = target_dir / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("global", {}).update(scrape_interval="1s", scrape_timeout="1s")
    found = False
    for job in config["scrape_configs"]:
        job.update(scrape_interval="1s", scrape_timeout="1s")
        if job["job_name"] == "chat-service":
            assert job.pop("dns_sd_configs"), "prometheus.yml finds the replicas by DNS"
            job["static_configs"] = [{"targets": [f"127.0.0.1:{service_port}"]}]
            found = True
    assert found, "prometheus.yml scrapes chat-service"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def test_real_prometheus_scrapes_the_service(exporting: StartService, tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    service = exporting()
    trace_id = drive_traffic(service)
    config = render_prometheus_config(tmp_path / "observability", service.port)
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        up: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                up = prometheus_query(port, 'up{job="chat-service"}')
                requests = prometheus_query(
                    port, 'sum(http_server_request_duration_seconds_count{job="chat-service"})'
                )
            except OSError:
                pass
            if up and up[0]["value"][1] == "1" and requests and float(requests[0]["value"][1]) > 0:
                break
            time.sleep(0.25)
        assert up, log_path.read_text()[-3000:]
        assert up[0]["value"][1] == "1", log_path.read_text()[-3000:]
        assert requests
        assert float(requests[0]["value"][1]) > 0
        # Prometheus asked for OpenMetrics and stored the trace-id exemplars it carries.
        url = f"http://127.0.0.1:{port}/api/v1/query_exemplars?" + urllib.parse.urlencode(
            {
                "query": "http_server_request_duration_seconds_bucket",
                "start": time.time() - 600,
                "end": time.time() + 60,
            }
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.load(response)["data"]
        stored = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
        assert trace_id in stored
    finally:
        process.terminate()
        process.wait(10)


def test_garbage_collector_pauses_are_exported(busy_service: tuple[ServiceProcess, str]) -> None:
    service, _ = busy_service
    _, text = scrape(service)
    counts = {
        s["generation"]: float(s["value"]) for s in samples(text, "chat_gc_pause_seconds_count")
    }
    assert set(counts) == {"0", "1", "2"}
    assert counts["0"] > 0, "requests allocate: young collections happened, and were timed"
    # The process froze what start-up built, and its policy says so (gc_policy.py).
    (frozen,) = samples(text, "chat_gc_frozen_objects")
    assert float(frozen["value"]) > 10_000
