"""The files agree: ports, service names, settings, config paths, the README.

Settings (chat_service/config.py) is the reference for the service's variables and port;
the NGINX template for the frontend's variables; observability/ for the collector and
Prometheus. Dockerfile, docker-compose.yml and k8s/ must say the same things.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_service.config import Settings
from tests.deploy.stack import (
    REPO,
    Doc,
    container_port,
    containers,
    dockerfile,
    env_of,
    find,
    load_yaml,
    published_ports,
    read_env_file,
    service_port,
    stage_env,
    workloads,
)

TEMPLATE = REPO / "frontend" / "nginx.conf.template"
NGINX_VARIABLES = {"NGINX_PORT", "CHAT_SERVICE_URL", "FRONTEND_ROOT"}
OTEL_VARIABLES = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}
# The README's URLs: compose service -> container port, and the page's path.
README_URLS = {
    "frontend": (8085, "/frontend.html"),
    "jaeger": (16686, ""),
    "prometheus": (9090, ""),
    "grafana": (3000, ""),
}


class _Recorder(dict[str, str]):
    """An empty environment that remembers which variables were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return default


def settings_variables() -> set[str]:
    recorder = _Recorder()
    Settings.from_env(recorder)
    assert "CHAT_PORT" in recorder.asked
    return recorder.asked


def service_environments(rendered: list[Doc], compose_file: Doc) -> dict[str, dict[str, str]]:
    """Where each deployment sets chat-service's environment, by source."""
    statefulset = next(w for w in workloads(rendered) if w["metadata"]["name"] == "chat-service")
    (container,) = containers(statefulset)
    image_env = stage_env(dockerfile(), "service")
    return {
        "Dockerfile": {k: v for k, v in image_env.items() if k.startswith(("CHAT_", "OTEL_"))},
        "docker-compose.yml": {
            k: str(v) for k, v in compose_file["services"]["chat-service"]["environment"].items()
        },
        "k8s": env_of(rendered, container),
    }


def frontend_environments(rendered: list[Doc], compose_file: Doc) -> dict[str, dict[str, str]]:
    deployment = next(w for w in workloads(rendered) if w["metadata"]["name"] == "frontend")
    (container,) = containers(deployment)
    return {
        "Dockerfile": stage_env(dockerfile(), "frontend"),
        "docker-compose.yml": {
            k: str(v) for k, v in compose_file["services"]["frontend"]["environment"].items()
        },
        "k8s": env_of(rendered, container),
    }


def pairs_disagreeing(environments: dict[str, dict[str, str]]) -> Iterator[str]:
    keys = {key for env in environments.values() for key in env}
    for key in sorted(keys):
        values = {source: env[key] for source, env in environments.items() if key in env}
        if len(set(values.values())) > 1:
            yield f"{key}: {values}"


def test_every_chat_variable_set_for_the_service_is_a_valid_setting(
    rendered: list[Doc], compose_file: Doc
) -> None:
    known = settings_variables()
    for source, env in service_environments(rendered, compose_file).items():
        chat = {k: v for k, v in env.items() if k.startswith("CHAT_")}
        assert chat.keys() <= known, f"{source}: {sorted(chat.keys() - known)}"
        assert {k for k in env if k.startswith("OTEL_")} <= OTEL_VARIABLES, source
        # The real Settings accept the values (types and ranges).
        settings = Settings.from_env(chat)
        assert settings.host == "0.0.0.0", source
        assert settings.port == Settings().port, source


def test_the_service_environment_agrees_across_image_compose_and_kubernetes(
    rendered: list[Doc], compose_file: Doc
) -> None:
    environments = service_environments(rendered, compose_file)
    assert list(pairs_disagreeing(environments)) == []
    for source in ("docker-compose.yml", "k8s"):
        assert environments[source].keys() >= {
            "CHAT_HOST",
            "CHAT_PORT",
            "CHAT_DB_PATH",
            *OTEL_VARIABLES,
        }


def test_the_service_port_is_the_same_everywhere(rendered: list[Doc], compose_file: Doc) -> None:
    port = Settings().port
    assert published_ports(compose_file["services"]["chat-service"]) == {port: port}
    service = find(rendered, "Service", "chat-service")
    statefulset = next(w for w in workloads(rendered) if w["metadata"]["name"] == "chat-service")
    (container,) = containers(statefulset)
    assert container_port(container, service_port(service, port)["targetPort"]) == port
    for source, env in frontend_environments(rendered, compose_file).items():
        assert env["CHAT_SERVICE_URL"] == f"http://chat-service:{port}", source
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in load_yaml(REPO / "observability/prometheus.yml")["scrape_configs"]
    }
    assert targets["chat-service"] == [f"chat-service:{port}"]


def test_traces_go_to_the_collector_by_its_service_name_and_http_port(
    rendered: list[Doc], compose_file: Doc
) -> None:
    collector = load_yaml(REPO / "observability/otel-collector.yaml")
    http_port = int(
        collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    )
    for source, env in service_environments(rendered, compose_file).items():
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in env:
            continue
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf", source
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{http_port}", source
    assert "otel-collector" in compose_file["services"]
    service_port(find(rendered, "Service", "otel-collector"), http_port)


def test_the_nginx_template_reads_exactly_the_variables_every_deployment_sets(
    rendered: list[Doc], compose_file: Doc
) -> None:
    template = TEMPLATE.read_text()
    # envsubst replaces ${VAR}; NGINX's own variables ($host, $uri, ...) are lower case.
    assert set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template)) == NGINX_VARIABLES
    assert "/nginx-health" in template
    environments = frontend_environments(rendered, compose_file)
    for source, env in environments.items():
        assert env.keys() >= NGINX_VARIABLES, source
    assert list(pairs_disagreeing(environments)) == []
    port = int(environments["k8s"]["NGINX_PORT"])
    assert published_ports(compose_file["services"]["frontend"]) == {port: port}
    service_port(find(rendered, "Service", "frontend"), port)
    assert read_env_file(REPO / "k8s" / "frontend.env").keys() == NGINX_VARIABLES


def files_mentioning(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*.py") if needle in p.read_text()]


def test_the_stacks_run_the_files_the_e2e_and_scrape_tests_run() -> None:
    # The Dockerfile bakes frontend/nginx.conf.template into the frontend image (compose and
    # k8s run that image); the e2e tests start a real NGINX with the same file.
    assert "frontend/nginx.conf.template" in (REPO / "Dockerfile").read_text()
    assert files_mentioning(REPO / "tests" / "e2e", "nginx.conf.template")
    # compose mounts and k8s generates its ConfigMap from observability/prometheus.yml (see
    # test_compose and test_kubernetes); the scrape test runs Prometheus with it.
    assert files_mentioning(REPO / "tests" / "integration", "prometheus.yml")


@pytest.fixture(scope="module")
def readme() -> str:
    return (REPO / "README.md").read_text()


def test_the_readme_gives_the_urls_compose_publishes(readme: str, compose_file: Doc) -> None:
    assert "## Run the stack" in readme
    assert "docker compose up --build" in readme
    for name, (port, path) in README_URLS.items():
        host_port = published_ports(compose_file["services"][name])[port]
        assert f"http://localhost:{host_port}{path}" in readme, name


def test_the_readme_explains_the_kubernetes_deployment(readme: str) -> None:
    assert "## Deploy to Kubernetes" in readme
    assert "kubectl apply -k k8s/" in readme
    assert re.search(r"kubectl (-n \S+ )?port-forward", readme)
    section = readme.split("## Deploy to Kubernetes", 1)[1]
    assert "SQLite" in section
    assert re.search(r"(one|single|1)[ -]replica", section, re.IGNORECASE)


def test_the_readme_documents_every_variable_the_deployments_set(
    readme: str, rendered: list[Doc], compose_file: Doc
) -> None:
    used = {
        key
        for env in service_environments(rendered, compose_file).values()
        for key in env
        if key.startswith(("CHAT_", "OTEL_"))
    }
    assert sorted(key for key in used if key not in readme) == []
