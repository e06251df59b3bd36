"""observability/otel-collector.yaml, checked structurally, and its endpoints in both stacks."""

from __future__ import annotations

import pytest

from tests.deploy.stack import (
    REPO,
    Doc,
    container_port,
    containers,
    find,
    load_yaml,
    service_port,
    workloads,
)

SECTIONS = ("receivers", "processors", "exporters", "connectors")


@pytest.fixture(scope="module")
def config() -> Doc:
    doc: Doc = load_yaml(REPO / "observability" / "otel-collector.yaml")
    return doc


def component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` is an ``otlp_grpc`` component named ``jaeger``."""
    return component_id.split("/", 1)[0]


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def collector_container(rendered: list[Doc]) -> Doc:
    item = next(w for w in workloads(rendered) if w["metadata"]["name"] == "otel-collector")
    (container,) = containers(item)
    return container


def test_pipelines_name_only_defined_components_and_use_all_of_them(config: Doc) -> None:
    pipelines = config["service"]["pipelines"]
    assert "traces" in pipelines
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config.get(section, {}), f"{name}: undefined {component}"
                used[section].add(component)
    for section in ("receivers", "processors", "exporters"):
        assert set(config.get(section, {})) == used[section], f"unused {section}"
    assert set(config["service"]["extensions"]) == set(config["extensions"])


def test_traces_are_memory_limited_first_then_batched(config: Doc) -> None:
    processors = config["service"]["pipelines"]["traces"]["processors"]
    assert component_type(processors[0]) == "memory_limiter"
    assert "batch" in map(component_type, processors)


def test_the_receiver_takes_otlp_over_grpc_and_http(config: Doc, rendered: list[Doc]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    ports = {name: port_of(protocols[name]["endpoint"]) for name in ("grpc", "http")}
    assert ports == {"grpc": 4317, "http": 4318}
    service = find(rendered, "Service", "otel-collector")
    container = collector_container(rendered)
    for port in ports.values():
        entry = service_port(service, port)
        assert container_port(container, entry["targetPort"]) == port


def test_traces_go_to_jaeger_as_named_in_compose_and_kubernetes(
    config: Doc, rendered: list[Doc], compose_file: Doc
) -> None:
    (exporter_id,) = config["service"]["pipelines"]["traces"]["exporters"]
    # `otlp_grpc` since collector 0.144; `otlp` is its older, deprecated alias.
    assert component_type(exporter_id) in ("otlp_grpc", "otlp")
    exporter = config["exporters"][exporter_id]
    host, port = exporter["endpoint"].rsplit(":", 1)
    assert (host, int(port)) == ("jaeger", 4317)
    assert exporter["tls"]["insecure"] is True
    assert host in compose_file["services"]
    service = find(rendered, "Service", host)
    jaeger = next(w for w in workloads(rendered) if w["metadata"]["name"] == "jaeger")
    (container,) = containers(jaeger)
    assert container_port(container, service_port(service, int(port))["targetPort"]) == int(port)


def test_health_and_own_metrics_ports_match_probes_and_scrape(
    config: Doc, rendered: list[Doc]
) -> None:
    container = collector_container(rendered)
    health = port_of(config["extensions"]["health_check"]["endpoint"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == health
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    exporter = reader["pull"]["exporter"]["prometheus"]
    assert exporter["host"] == "0.0.0.0"
    jobs = {
        j["job_name"]: j for j in load_yaml(REPO / "observability/prometheus.yml")["scrape_configs"]
    }
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == [
        f"otel-collector:{exporter['port']}"
    ]
    assert container_port(container, "metrics") == exporter["port"]
