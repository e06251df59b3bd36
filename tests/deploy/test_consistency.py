"""The files agree: ports, service names, settings, config paths, the README.

Settings (chat_service/config.py) is the reference for the service's variables and port;
the NGINX template for the frontend's variables; observability/ for the collector and
Prometheus. Dockerfile, docker-compose.yml and k8s/ must say the same things.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from chat_service.config import Settings
from tests.deploy.stack import (
    COMPONENTS,
    REPO,
    Doc,
    as_mounted,
    bind_mounts,
    compose,
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
# The frontend's one setting the template does not read: the image's start-up script turns it
# into the set_real_ip_from lines the template includes. It differs by design: compose's
# NGINX is the edge and trusts no one, k8s's trusts the ingress controller.
TRUSTED_PROXIES = "NGINX_TRUSTED_PROXIES"
# And the service's OpenID Connect issuer, which the other start-up script turns into the
# origin the page's Content-Security-Policy admits: the service's setting, the same value.
OIDC_ISSUER = "CHAT_OIDC_ISSUER"
FRONTEND_VARIABLES = NGINX_VARIABLES | {TRUSTED_PROXIES, OIDC_ISSUER}
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


def workload(rendered: list[Doc], name: str) -> Doc:
    (item,) = [w for w in workloads(rendered) if w["metadata"]["name"] == name]
    return item


def service_environments(rendered: list[Doc], compose_file: Doc) -> dict[str, dict[str, str]]:
    """Where each deployment sets chat-service's environment, by source."""
    (container,) = containers(workload(rendered, "chat-service"))
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
    rendered: list[Doc], compose_file: Doc, tmp_path: Path
) -> None:
    known = settings_variables()
    environments = service_environments(rendered, compose_file)
    # In k8s, with the Secrets' files where the kubelet would mount them.
    item = workload(rendered, "chat-service")
    (container,) = containers(item)
    environments["k8s"] = as_mounted(rendered, item, container, tmp_path)
    for source, env in environments.items():
        chat = {k: v for k, v in env.items() if k.startswith("CHAT_")}
        assert chat.keys() <= known, f"{source}: {sorted(chat.keys() - known)}"
        assert {k for k in env if k.startswith("OTEL_")} <= OTEL_VARIABLES, source
        # The real Settings accept the values (types and ranges).
        settings = Settings.from_env(chat)
        assert settings.host == "0.0.0.0", source
        assert settings.port == Settings().port, source
        if source != "Dockerfile":
            assert settings.database_url is not None, source


def test_the_service_environment_agrees_across_image_compose_and_kubernetes(
    rendered: list[Doc], compose_file: Doc
) -> None:
    environments = service_environments(rendered, compose_file)
    assert list(pairs_disagreeing(environments)) == []
    for source in ("docker-compose.yml", "k8s"):
        assert environments[source].keys() >= {"CHAT_HOST", "CHAT_PORT", *OTEL_VARIABLES}
        assert "CHAT_DB_PATH" not in environments[source], source
    # The database: a URL in compose, a mounted Secret's file in k8s.
    assert "CHAT_DATABASE_URL" in environments["docker-compose.yml"]
    assert "CHAT_DATABASE_URL_FILE" in environments["k8s"]


def test_the_service_port_is_the_same_everywhere(rendered: list[Doc], compose_file: Doc) -> None:
    port = Settings().port
    # Replicas publish nothing on the host: the API is reached through NGINX.
    assert published_ports(compose_file["services"]["chat-service"]) == {}
    service = find(rendered, "Service", "chat-service")
    (container,) = containers(workload(rendered, "chat-service"))
    assert container_port(container, service_port(service, port)["targetPort"]) == port
    for source, env in frontend_environments(rendered, compose_file).items():
        assert env["CHAT_SERVICE_URL"] == f"http://chat-service:{port}", source
    jobs = {
        job["job_name"]: job
        for job in load_yaml(REPO / "observability/prometheus.yml")["scrape_configs"]
    }
    (discovery,) = jobs["chat-service"]["dns_sd_configs"]
    assert discovery["port"] == port


def test_prometheus_finds_every_replica_in_both_stacks(
    rendered: list[Doc], compose_file: Doc
) -> None:
    """Scraped through the Service (or the compose name NGINX uses), each scrape would hit
    a random replica and mix their counters: each replica is a target of its own."""
    jobs = {
        job["job_name"]: job
        for job in load_yaml(REPO / "observability/prometheus.yml")["scrape_configs"]
    }
    chat = jobs["chat-service"]
    assert "static_configs" not in chat
    (discovery,) = chat["dns_sd_configs"]
    assert discovery["type"] == "A"
    (name,) = discovery["names"]
    assert name != "chat-service"
    # compose: a name every chat-service container answers to.
    aliases = compose_file["services"]["chat-service"]["networks"]["default"]["aliases"]
    assert name in aliases
    assert name not in compose_file["services"]
    # k8s: a headless Service (one address per pod, ready or not) over the same pods.
    headless = find(rendered, "Service", name)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    item = workload(rendered, "chat-service")
    labels = item["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items()
    (container,) = containers(item)
    target = service_port(headless, discovery["port"])["targetPort"]
    assert container_port(container, target) == discovery["port"]
    # The Service clients use is a single address, which is why it is not scraped.
    assert find(rendered, "Service", "chat-service")["spec"].get("clusterIP") != "None"


def test_third_party_images_are_the_same_in_compose_and_kubernetes(
    rendered: list[Doc], compose_file: Doc
) -> None:
    pulled = {
        name: service["image"]
        for name, service in compose_file["services"].items()
        if "build" not in service
    }
    assert set(pulled) == set(COMPONENTS) - {"frontend", "chat-service"}
    for name, image in pulled.items():
        (container,) = containers(workload(rendered, name))
        assert container["image"] == image, name


def test_grafana_in_kubernetes_is_provisioned_as_in_compose(
    rendered: list[Doc], compose_file: Doc
) -> None:
    service = compose_file["services"]["grafana"]
    item = workload(rendered, "grafana")
    (container,) = containers(item)
    volumes = {v["name"]: v for v in item["spec"]["template"]["spec"]["volumes"]}
    mounted: dict[str, dict[str, str]] = {}
    for mount in container["volumeMounts"]:
        source = volumes.get(mount["name"], {}).get("configMap")
        if source is not None:
            mounted[mount["mountPath"]] = find(rendered, "ConfigMap", source["name"])["data"]
    # Each file compose mounts (a folder of the repository) is in k8s at the same path.
    expected: dict[str, str] = {}
    for target, folder in bind_mounts(service).items():
        for path in (REPO / folder).rglob("*"):
            if path.is_file():
                relative = PurePosixPath(target) / path.relative_to(REPO / folder).as_posix()
                expected[str(relative)] = path.read_text()
    assert len(expected) == 3
    found = {
        str(PurePosixPath(folder) / key): text
        for folder, data in mounted.items()
        for key, text in data.items()
    }
    assert found == expected
    env = env_of(rendered, container)
    for key in (
        "GF_AUTH_ANONYMOUS_ENABLED",
        "GF_AUTH_ANONYMOUS_ORG_ROLE",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    ):
        assert env[key] == service["environment"][key], key
    # Its data sources are Services of the namespace, on the ports they name.
    sources = load_yaml(REPO / "observability/grafana/provisioning/datasources/datasources.yml")
    for source in sources["datasources"]:
        host, port = source["url"].removeprefix("http://").split(":")
        service_port(find(rendered, "Service", host), int(port))


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
        assert env.keys() >= FRONTEND_VARIABLES, source
    trusted = {source: env.pop(TRUSTED_PROXIES) for source, env in environments.items()}
    assert list(pairs_disagreeing(environments)) == []
    assert trusted["Dockerfile"] == trusted["docker-compose.yml"] == ""
    assert trusted["k8s"] != ""
    port = int(environments["k8s"]["NGINX_PORT"])
    assert published_ports(compose_file["services"]["frontend"]) == {port: port}
    service_port(find(rendered, "Service", "frontend"), port)
    # The issuer is not in frontend.env: frontend.yaml reads it from the service's ConfigMap.
    frontend_env = read_env_file(REPO / "k8s" / "base" / "frontend.env")
    assert frontend_env.keys() == FRONTEND_VARIABLES - {OIDC_ISSUER}


@pytest.mark.parametrize("shell", [{}, {OIDC_ISSUER: "https://sso.example.com/realms/chat"}])
def test_nginx_gets_the_issuer_the_service_has(rendered: list[Doc], shell: dict[str, str]) -> None:
    """The page signs in where the service takes tokens from, and its policy admits that
    origin: NGINX and the service must have the same CHAT_OIDC_ISSUER, in each stack."""
    services = compose(shell)["services"]
    assert (
        services["frontend"]["environment"][OIDC_ISSUER]
        == (services["chat-service"]["environment"][OIDC_ISSUER])
    )
    assert services["frontend"]["environment"][OIDC_ISSUER] == shell.get(OIDC_ISSUER, "")
    service = env_of(rendered, containers(workload(rendered, "chat-service"))[0])
    nginx = env_of(rendered, containers(workload(rendered, "frontend"))[0])
    assert nginx[OIDC_ISSUER] == service[OIDC_ISSUER]
    # One place to set it in k8s: the frontend's value is a reference to the service's.
    (frontend,) = containers(workload(rendered, "frontend"))
    (entry,) = [e for e in frontend["env"] if e["name"] == OIDC_ISSUER]
    reference = entry["valueFrom"]["configMapKeyRef"]
    assert reference["key"] == OIDC_ISSUER
    (service_container,) = containers(workload(rendered, "chat-service"))
    assert {"configMapRef": {"name": reference["name"]}} in service_container["envFrom"]


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


def section(readme: str, title: str) -> str:
    """One ``## title`` section of the README, up to the next one."""
    assert f"\n## {title}\n" in readme, title
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_gives_the_urls_compose_publishes(readme: str, compose_file: Doc) -> None:
    stack = section(readme, "Run the stack")
    assert "docker compose up --build" in stack
    for name, (port, path) in README_URLS.items():
        host_port = published_ports(compose_file["services"][name])[port]
        assert f"http://localhost:{host_port}{path}" in stack, name
    # Scaling out, and the database it needs.
    assert "--scale chat-service=3" in stack
    assert "postgres" in stack
    assert "POSTGRES_PASSWORD" in stack
    # The replicas publish no port: the README must not send people to one.
    assert "localhost:8000" not in stack


def test_the_readme_explains_the_kubernetes_deployment(readme: str) -> None:
    deploy = section(readme, "Deploy to Kubernetes")
    assert "kubectl apply -k k8s/" in deploy
    assert re.search(r"kubectl (-n \S+ )?port-forward", deploy)
    assert "PostgreSQL" in deploy
    # The bundled database is a demo: the README points at the real options.
    assert "managed database" in deploy
    assert "CloudNativePG" in deploy
    # The overlays, with the commands that apply them.
    for overlay in ("k8s/overlays/sqlite/", "k8s/overlays/prometheus-operator/"):
        assert f"kubectl apply -k {overlay}" in deploy, overlay
        assert (REPO / overlay / "kustomization.yaml").is_file(), overlay
    assert "SQLite" in deploy
    assert re.search(r"(one|single|1)[ -]replica", deploy, re.IGNORECASE)
    assert "ServiceMonitor" in deploy
    # The development secrets: where they are, and that they must be replaced.
    assert "k8s/base/dev-secrets/" in deploy
    assert "replace before production" in deploy.lower()


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
    # The frontend's other variables are plumbing the images set; this one a deployment
    # behind a proxy must set itself.
    assert TRUSTED_PROXIES in readme
