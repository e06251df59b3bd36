"""k8s/: the base and its overlays render with kubectl, validate against the Kubernetes
schemas, and are hardened; chat-service scales out on PostgreSQL, and the SQLite overlay keeps
the single-pod layout."""

from __future__ import annotations

import ipaddress
import math
import re
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from chat_service.config import Settings
from chat_service.telemetry.tracing import EXPORT_FLUSH_TIMEOUT_S
from tests.deploy.stack import (
    BASE,
    BUILDS,
    COMPONENTS,
    KUBERNETES_VERSION,
    OPERATOR_OVERLAY,
    REPO,
    SQLITE_OVERLAY,
    Doc,
    as_mounted,
    container_port,
    containers,
    env_of,
    find,
    mounted_secrets,
    named,
    pod_spec,
    render_kustomize,
    rendered_build,
    secret_value,
    service_port,
    workloads,
)
from tests.e2e.nginx import NginxServer, read_oidc_origin, write_oidc_origin
from tests.support.binaries import require_binary

NAMESPACE = "chat-service"
COMMON_LABELS = {
    "app.kubernetes.io/part-of": "chat-service",
    "app.kubernetes.io/managed-by": "kustomize",
}
# A tag with at least a major.minor version: no `latest`, no floating `3` or `alpine`.
PINNED_IMAGE = re.compile(r"[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?")
# Custom resources: kubernetes-validate has no schema for them, so they are checked by hand
# (test_the_operator_overlay_scrapes_every_pod_with_a_service_monitor). Anything else must
# validate.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# PostgreSQL's default max_connections, and the connections it keeps for superusers
# (superuser_reserved_connections).
POSTGRES_MAX_CONNECTIONS = 100
POSTGRES_RESERVED_CONNECTIONS = 3
# The workloads of the stack without PostgreSQL, and without the observability stack the
# Prometheus Operator overlay leaves to the cluster.
SQLITE_COMPONENTS = set(COMPONENTS) - {"postgres"}
OPERATOR_COMPONENTS = {"frontend", "chat-service", "postgres"}
BUNDLED_OBSERVABILITY = ("prometheus", "otel-collector", "jaeger", "grafana")


def workload(rendered: list[Doc], name: str) -> Doc:
    found = [w for w in workloads(rendered) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload named {name}"
    return found[0]


def pod_labels(item: Doc) -> dict[str, str]:
    labels: dict[str, str] = item["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A label selector's verdict; an empty one selects everything."""
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def build(path: str) -> list[Doc]:
    return list(rendered_build(path))


# ---------------------------------------------------------------- every build


@pytest.mark.parametrize("path", BUILDS)
def test_every_object_validates_against_the_kubernetes_schemas(path: str) -> None:
    docs = build(path)
    kinds = {doc["kind"] for doc in docs}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "ConfigMap", "Secret"} <= kinds
    assert {"Ingress", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    failures = []
    custom = set()
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            custom.add(doc["kind"])
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")
    assert failures == []
    # Only the operator overlay brings a custom resource; the others validate entirely.
    assert custom == ({"ServiceMonitor"} if path == OPERATOR_OVERLAY else set())


@pytest.mark.parametrize("path", BUILDS)
def test_objects_share_the_namespace_and_the_common_labels(path: str) -> None:
    docs = build(path)
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        assert COMMON_LABELS.items() <= labels.items(), doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    for doc in [*workloads(docs), *(d for d in docs if d["kind"] == "Service")]:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] in COMPONENTS
    for item in workloads(docs):
        assert COMMON_LABELS.items() <= pod_labels(item).items()
        assert item["spec"]["selector"]["matchLabels"].items() <= pod_labels(item).items()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (BASE, set(COMPONENTS)),
        (SQLITE_OVERLAY, SQLITE_COMPONENTS),
        (OPERATOR_OVERLAY, OPERATOR_COMPONENTS),
    ],
)
def test_each_build_has_one_workload_per_component(path: str, expected: set[str]) -> None:
    names = [w["metadata"]["name"] for w in workloads(build(path))]
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize(
    ("path", "name"),
    [(BASE, name) for name in COMPONENTS] + [(SQLITE_OVERLAY, "chat-service")],
)
def test_every_container_is_pinned_bounded_probed_and_locked_down(path: str, name: str) -> None:
    item = workload(build(path), name)
    spec = pod_spec(item)
    assert spec["automountServiceAccountToken"] is False
    # Service links would put e.g. CHAT_SERVICE_PORT=tcp://... next to the CHAT_* settings.
    assert spec["enableServiceLinks"] is False
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in item["spec"].get("volumeClaimTemplates", [])}
    for container in containers(item):
        assert PINNED_IMAGE.fullmatch(container["image"]), container["image"]
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[bound].keys(), f"{name}: {bound}"
        assert "readinessProbe" in container
        assert "livenessProbe" in container
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] > 0
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        for mount in container.get("volumeMounts", []):
            if mount.get("readOnly"):
                continue
            # With a read-only root, whatever the container writes goes to a scratch
            # emptyDir or to its persistent claim.
            writable = mount["name"] in claims or "emptyDir" in volumes.get(mount["name"], {})
            assert writable, f"{name}: {mount['mountPath']} is writable but not emptyDir/PVC"


@pytest.mark.parametrize("path", BUILDS)
def test_services_select_their_pods_and_target_named_container_ports(path: str) -> None:
    docs = build(path)
    services = [d for d in docs if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} >= {"frontend", "chat-service"}
    for service in services:
        selector = service["spec"]["selector"]
        matched = [w for w in workloads(docs) if selector.items() <= pod_labels(w).items()]
        assert len(matched) == 1, service["metadata"]["name"]
        (container,) = pod_spec(matched[0])["containers"]
        for port in service["spec"]["ports"]:
            assert container_port(container, port["targetPort"]) == port["port"]


@pytest.mark.parametrize("path", BUILDS)
def test_every_reference_names_an_object_of_the_build(path: str) -> None:
    """Nothing points at an object an overlay removed or renamed: ConfigMaps and Secrets
    (generated names included), governing Services, autoscaler targets."""
    docs = build(path)

    def exists(kind: str, name: str) -> bool:
        return any(d["kind"] == kind and d["metadata"]["name"] == name for d in docs)

    for item in workloads(docs):
        for volume in pod_spec(item).get("volumes", []):
            if "configMap" in volume:
                assert exists("ConfigMap", volume["configMap"]["name"]), volume
            if "secret" in volume:
                assert exists("Secret", volume["secret"]["secretName"]), volume
        for container in containers(item):
            for source in container.get("envFrom", []):
                assert exists("ConfigMap", source["configMapRef"]["name"]), source
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("configMapKeyRef")
                if ref is not None:
                    assert exists("ConfigMap", ref["name"]), entry
        if item["kind"] == "StatefulSet":
            assert exists("Service", item["spec"]["serviceName"])
    for scaler in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        target = scaler["spec"]["scaleTargetRef"]
        assert exists(target["kind"], target["name"]), target


# ---------------------------------------------------------------- chat-service, scaled out


def test_chat_service_is_a_deployment_of_several_replicas_without_sqlite(
    rendered: list[Doc], tmp_path: Path
) -> None:
    item = workload(rendered, "chat-service")
    assert item["kind"] == "Deployment"
    assert item["spec"]["replicas"] >= 2
    # Nothing of the SQLite layout is left: no claim, no volume but scratch space and
    # Secrets, no database path.
    assert "volumeClaimTemplates" not in item["spec"]
    assert not [d for d in rendered if d["kind"] == "PersistentVolumeClaim"]
    for volume in pod_spec(item)["volumes"]:
        assert {"emptyDir", "secret"} & volume.keys(), volume["name"]
        assert "emptyDir" not in volume or volume["name"] == "tmp", volume["name"]
    (container,) = containers(item)
    assert "/data" not in {m["mountPath"] for m in container["volumeMounts"]}
    env = env_of(rendered, container)
    assert "CHAT_DB_PATH" not in env
    assert "sqlite" not in str(item).lower()
    # What the service makes of it: PostgreSQL at the postgres Service.
    settings = Settings.from_env(as_mounted(rendered, item, container, tmp_path))
    assert settings.host == "0.0.0.0"
    assert settings.database_url is not None
    url = urlsplit(settings.database_url)
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)


def test_the_autoscaler_scales_the_deployment_on_cpu(rendered: list[Doc]) -> None:
    (scaler,) = [d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"]
    assert scaler["apiVersion"] == "autoscaling/v2"
    assert scaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chat-service",
    }
    deployment = find(rendered, "Deployment", "chat-service")
    low, high = scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]
    assert 2 <= low <= deployment["spec"]["replicas"] <= high
    assert high > low
    (metric,) = scaler["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 50 <= metric["resource"]["target"]["averageUtilization"] <= 90
    # Utilization is a share of the request: without one the autoscaler cannot compute it.
    for container in containers(deployment):
        assert container["resources"]["requests"]["cpu"]


def test_the_disruption_budget_lets_one_chat_service_pod_go_at_a_time(
    rendered: list[Doc],
) -> None:
    budget = find(rendered, "PodDisruptionBudget", "chat-service")
    deployment = find(rendered, "Deployment", "chat-service")
    selector = budget["spec"]["selector"]
    assert selects(selector, pod_labels(deployment))
    others = [w for w in workloads(rendered) if w is not deployment]
    assert not [w["metadata"]["name"] for w in others if selects(selector, pod_labels(w))]
    (scaler,) = [d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"]
    if "maxUnavailable" in budget["spec"]:
        assert budget["spec"]["maxUnavailable"] == 1
    else:
        assert 1 <= budget["spec"]["minAvailable"] < scaler["spec"]["minReplicas"]


def test_chat_service_replicas_spread_over_nodes(rendered: list[Doc]) -> None:
    deployment = find(rendered, "Deployment", "chat-service")
    constraints = {c["topologyKey"]: c for c in pod_spec(deployment)["topologySpreadConstraints"]}
    spread = constraints["kubernetes.io/hostname"]
    assert spread["maxSkew"] == 1
    # A preference: a cluster with fewer nodes than pods still runs them all.
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert selects(spread["labelSelector"], pod_labels(deployment))
    # Rolling updates keep the spread: old and new pods are counted apart.
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    for constraint in constraints.values():
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


@pytest.mark.parametrize("path", [BASE, SQLITE_OVERLAY])
def test_chat_service_probes_and_graceful_shutdown_fit_the_service(path: str) -> None:
    docs = build(path)
    item = workload(docs, "chat-service")
    (container,) = pod_spec(item)["containers"]
    env = env_of(docs, container)
    port = int(env["CHAT_PORT"])
    for probe, route in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        assert container[probe]["httpGet"]["path"] == route
        assert container_port(container, container[probe]["httpGet"]["port"]) == port
    # Start-up waits up to CHAT_DATABASE_CONNECT_TIMEOUT_S for the database, then exits;
    # the startup probe must not kill the pod before that, with 10 s to spare.
    startup = container["startupProbe"]
    window = startup["periodSeconds"] * startup["failureThreshold"]
    connect = float(
        env.get("CHAT_DATABASE_CONNECT_TIMEOUT_S", Settings().database_connect_timeout_s)
    )
    assert window >= connect + 10
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    shutdown = float(env.get("CHAT_SHUTDOWN_TIMEOUT", Settings().shutdown_timeout_s))
    shutdown += EXPORT_FLUSH_TIMEOUT_S
    grace = pod_spec(item)["terminationGracePeriodSeconds"]
    # The kubelet sends SIGTERM after preStop; the service then needs up to its shutdown
    # timeout plus the span flush. All must fit in the grace period, with room to spare.
    assert pre_stop + shutdown + 5 <= grace


def test_chat_service_connections_fit_in_postgres(rendered: list[Doc]) -> None:
    """At the autoscaler's maximum, during a rollout's surge, every pod's full pool and one
    connection more (a listener) stay under PostgreSQL's limit."""
    (scaler,) = [d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"]
    deployment = find(rendered, "Deployment", "chat-service")
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    pods = scaler["spec"]["maxReplicas"]
    pods += surge if isinstance(surge, int) else math.ceil(pods * int(surge[:-1]) / 100)
    (container,) = containers(deployment)
    env = env_of(rendered, container)
    pool = int(env.get("CHAT_DATABASE_POOL_SIZE", Settings().database_pool_size))
    (postgres,) = containers(find(rendered, "StatefulSet", "postgres"))
    flags = " ".join(postgres.get("command", []) + postgres.get("args", []))
    match = re.search(r"max_connections=(\d+)", flags)
    limit = int(match.group(1)) if match else POSTGRES_MAX_CONNECTIONS
    assert pods * (pool + 1) <= limit - POSTGRES_RESERVED_CONNECTIONS


# ---------------------------------------------------------------- PostgreSQL


def test_postgres_is_one_server_on_its_own_volume(rendered: list[Doc]) -> None:
    item = workload(rendered, "postgres")
    assert item["kind"] == "StatefulSet"
    assert item["spec"]["replicas"] == 1
    (container,) = containers(item)
    assert container["image"].startswith("postgres:")
    # The headless Service the database URL names.
    service = find(rendered, "Service", "postgres")
    assert item["spec"]["serviceName"] == "postgres"
    assert service["spec"]["clusterIP"] == "None"
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(item))
    assert container_port(container, service_port(service, 5432)["targetPort"]) == 5432
    (claim,) = item["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = env_of(rendered, container)
    data = PurePosixPath(env["PGDATA"])
    # A folder inside the volume, not its root (which may hold lost+found).
    assert data.parent == PurePosixPath(mounts[claim["metadata"]["name"]])
    # The Alpine image's postgres user, which owns the volume through fsGroup.
    assert container["securityContext"]["runAsUser"] == 70
    assert pod_spec(item)["securityContext"]["fsGroup"] == 70
    assert {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"} <= env.keys()
    assert "POSTGRES_PASSWORD" not in env
    # What README's erasure promise asks of the server: spent WAL deleted, not recycled.
    assert container["args"] == ["postgres", "-c", "wal_recycle=off"]


def test_postgres_is_probed_over_tcp_and_stops_fast(rendered: list[Doc]) -> None:
    item = workload(rendered, "postgres")
    (container,) = containers(item)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "pg_isready", probe
        # TCP, not the socket: while the image initialises the database, its temporary
        # server listens on the socket only.
        assert "--host=127.0.0.1" in command, probe
        assert "--port=5432" in command, probe
    stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert stop[:2] == ["pg_ctl", "stop"]
    assert "--mode=fast" in stop
    assert f"--pgdata={env_of(rendered, container)['PGDATA']}" in stop
    timeout = int(next(a for a in stop if a.startswith("--timeout=")).split("=")[1])
    assert timeout < pod_spec(item)["terminationGracePeriodSeconds"]


# ---------------------------------------------------------------- Secrets

# Which Secret key each workload reads, and through which variable (a file's path), or, for
# NGINX, at which path its template includes it. Written here, not read from the manifests.
SECRET_FILES = {
    ("chat-service", "CHAT_DATABASE_URL_FILE"): ("chat-service", "database-url"),
    ("chat-service", "CHAT_API_KEYS_FILE"): ("chat-service", "api-keys"),
    ("chat-service", "OPENAI_API_KEY_FILE"): ("chat-service", "openai-api-key"),
    ("postgres", "POSTGRES_PASSWORD_FILE"): ("postgres", "password"),
    ("grafana", "GF_SECURITY_ADMIN_PASSWORD__FILE"): ("grafana", "admin-password"),
}
NGINX_AUTH_FILE = "/etc/nginx/chat-service/upstream-auth.conf"
# Variables that would carry a secret's value itself.
SECRET_VARIABLES = {
    "CHAT_DATABASE_URL",
    "CHAT_API_KEYS",
    "OPENAI_API_KEY",
    "POSTGRES_PASSWORD",
    "GF_SECURITY_ADMIN_PASSWORD",
}
DEV_MARKER = "dev-only-replace-before-production"
DEV_NOTICE = "development only; replace before production"
DEV_SECRETS = REPO / "k8s" / "base" / "dev-secrets"


def secret_text(docs: list[Doc], name: str, key: str) -> str:
    return secret_value(find(docs, "Secret", name), key)


def comments_only(text: str) -> bool:
    """Whether ``text`` is only comment lines (a default that holds nothing secret)."""
    return all(line.startswith("#") or not line.strip() for line in text.splitlines())


def secret_values(docs: list[Doc]) -> list[str]:
    """Every value of every Secret in ``docs`` (comment-only defaults aside)."""
    values = [
        secret_value(secret, key).strip()
        for secret in docs
        if secret["kind"] == "Secret"
        for key in secret["data"]
    ]
    return [value for value in values if value and not comments_only(value)]


def test_each_secret_is_a_file_where_it_is_used(rendered: list[Doc]) -> None:
    for (name, variable), expected in SECRET_FILES.items():
        item = workload(rendered, name)
        (container,) = containers(item)
        files = mounted_secrets(rendered, item, container)
        assert files[env_of(rendered, container)[variable]] == expected, variable
    frontend = workload(rendered, "frontend")
    (nginx,) = containers(frontend)
    assert mounted_secrets(rendered, frontend, nginx)[NGINX_AUTH_FILE] == (
        "frontend-upstream-auth",
        "upstream-auth.conf",
    )


@pytest.mark.parametrize("path", BUILDS)
def test_secrets_are_mounted_read_only_and_never_put_in_the_environment(path: str) -> None:
    docs = build(path)
    values = secret_values(docs)
    assert values, "the build has Secrets with values"
    for item in workloads(docs):
        spec = pod_spec(item)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(item):
            assert not [s for s in container.get("envFrom", []) if "secretRef" in s]
            for entry in container.get("env", []):
                # A key of a ConfigMap at most (the frontend's copy of the service's issuer);
                # never a Secret's.
                assert set(entry.get("valueFrom", {})) <= {"configMapKeyRef"}, entry["name"]
                assert entry["name"] not in SECRET_VARIABLES, entry["name"]
            for mount in container.get("volumeMounts", []):
                # (claims from volumeClaimTemplates are not in volumes)
                source = volumes.get(mount["name"], {}).get("secret")
                if source is None:
                    continue
                assert mount["readOnly"] is True, mount
                # Readable by the container's group only (the pod's fsGroup), not by others.
                assert source["defaultMode"] == 0o440, mount
                group = container["securityContext"]["runAsGroup"]
                assert spec["securityContext"]["fsGroup"] == group, item["metadata"]["name"]
            env = env_of(docs, container)
            leaked = [k for k, v in env.items() if any(value in v for value in values)]
            assert leaked == [], f"{item['metadata']['name']}: {leaked}"
    for config in (d for d in docs if d["kind"] == "ConfigMap"):
        for key, text in config.get("data", {}).items():
            assert not [v for v in values if v in text], f"{config['metadata']['name']}/{key}"


def test_the_development_secrets_are_marked_and_generated_from_k8s(rendered: list[Doc]) -> None:
    readme = (DEV_SECRETS / "README.md").read_text()
    assert DEV_NOTICE in readme.lower()
    files = sorted(p for p in DEV_SECRETS.iterdir() if p.name != "README.md")
    assert len(files) == 6
    for path in files:
        text = path.read_text()
        # A value that says what it is, or comments that say it.
        assert DEV_MARKER in text or (comments_only(text) and DEV_NOTICE in text.lower()), path.name
    secrets = [d for d in rendered if d["kind"] == "Secret"]
    assert sorted(re.sub(r"-[a-z0-9]{10}$", "", s["metadata"]["name"]) for s in secrets) == [
        "chat-service",
        "frontend-upstream-auth",
        "grafana",
        "postgres",
    ]
    rendered_values = sorted(secret_value(s, key) for s in secrets for key in s["data"])
    assert rendered_values == sorted(p.read_text() for p in files)


def test_the_database_url_names_the_postgres_the_base_creates(rendered: list[Doc]) -> None:
    url = urlsplit(secret_text(rendered, "chat-service", "database-url").strip())
    postgres = workload(rendered, "postgres")
    (container,) = containers(postgres)
    env = env_of(rendered, container)
    assert url.scheme == "postgresql"
    assert url.username == env["POSTGRES_USER"]
    assert url.password == secret_text(rendered, "postgres", "password").strip()
    assert url.path == "/" + env["POSTGRES_DB"]
    assert url.hostname is not None
    service = find(rendered, "Service", url.hostname)
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(postgres))
    assert url.port == 5432
    service_port(service, url.port)


def test_by_default_api_keys_are_off_and_nginx_sends_no_key(
    rendered: list[Doc], tmp_path: Path
) -> None:
    item = workload(rendered, "chat-service")
    (container,) = containers(item)
    settings = Settings.from_env(as_mounted(rendered, item, container, tmp_path))
    # An API keys file without keys: no keys, the API is open (as without the file).
    assert settings.api_keys == ()
    assert settings.assistant == "dummy"
    nginx = secret_text(rendered, "frontend-upstream-auth", "upstream-auth.conf")
    assert comments_only(nginx)


# ---------------------------------------------------------------- the README's procedures


def copy_stack(root: Path) -> Path:
    """k8s/ and observability/ copied below ``root`` (the layout the base refers to)."""
    for folder in ("k8s", "observability"):
        shutil.copytree(REPO / folder, root / folder)
    return root / "k8s"


# What an operator puts in the files of a production overlay.
PRODUCTION_KEY = "prod-key-0123456789abcdef"
PRODUCTION = {
    "database-url": "postgresql://chat:s3cret-Pa55word@db.example.internal:5432/chat",
    "api-keys": f"# production\n{PRODUCTION_KEY}\n",
    "openai-api-key": "sk-test-not-a-real-key",
    "nginx-upstream-auth.conf": f'proxy_set_header Authorization "Bearer {PRODUCTION_KEY}";\n',
    "postgres-password": "s3cret-Pa55word",
    "grafana-admin-password": "grafana-pa55word",
}


def production_overlay(k8s: Path) -> Path:
    """The overlay the README describes: each Secret replaced from files of its own."""
    overlay = k8s / "overlays" / "production"
    overlay.mkdir(parents=True)
    for name, text in PRODUCTION.items():
        (overlay / name).write_text(text)
    (overlay / "kustomization.yaml").write_text(
        """\
resources:
  - ../../base
secretGenerator:
  - name: chat-service
    behavior: replace
    files:
      - database-url
      - api-keys
      - openai-api-key
  - name: postgres
    behavior: replace
    files:
      - password=postgres-password
  - name: frontend-upstream-auth
    behavior: replace
    files:
      - upstream-auth.conf=nginx-upstream-auth.conf
  - name: grafana
    behavior: replace
    files:
      - admin-password=grafana-admin-password
"""
    )
    return overlay


def test_replacing_the_development_secrets_as_the_readme_says(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Deploy to Kubernetes", 1)[1].split("\n## ", 1)[0]
    assert "behavior: replace" in section
    for name in ("chat-service", "postgres", "frontend-upstream-auth", "grafana"):
        assert f"name: {name}" in section, name

    docs = render_kustomize(production_overlay(copy_stack(tmp_path)))
    everything = "\n".join(secret_values(docs))
    assert DEV_MARKER not in everything
    assert "Development only" not in everything

    item = workload(docs, "chat-service")
    (container,) = containers(item)
    settings = Settings.from_env(as_mounted(docs, item, container, tmp_path / "mounted"))
    assert settings.database_url == PRODUCTION["database-url"]
    assert settings.api_keys == (PRODUCTION_KEY,)
    assert settings.openai_api_key == PRODUCTION["openai-api-key"]
    # NGINX sends one of the keys the service accepts.
    nginx = secret_text(docs, "frontend-upstream-auth", "upstream-auth.conf")
    (bearer,) = re.findall(r'Authorization "Bearer ([^"]+)"', nginx)
    assert bearer in settings.api_keys
    password = secret_text(docs, "postgres", "password")
    assert urlsplit(settings.database_url).password == password


@pytest.mark.parametrize("source", ["development default", "production overlay"])
def test_nginx_runs_with_the_upstream_auth_file(
    source: str, rendered: list[Doc], tmp_path: Path
) -> None:
    """`nginx -t` on the project's template with the Secret's file where the frontend
    mounts it (relative to the configuration's folder, like /etc/nginx/chat-service/)."""
    nginx = require_binary("nginx", package="nginx-light")
    docs = rendered
    if source == "production overlay":
        docs = render_kustomize(production_overlay(copy_stack(tmp_path / "stack")))
    auth = secret_text(docs, "frontend-upstream-auth", "upstream-auth.conf")
    server = NginxServer(binary=nginx, workdir=tmp_path / "nginx", service_url="http://127.0.0.1:9")
    server.write_config()
    included = server.workdir / PurePosixPath(NGINX_AUTH_FILE).relative_to("/etc/nginx")
    included.parent.mkdir(exist_ok=True)
    included.write_text(auth)
    result = server.check_config()
    assert result.returncode == 0, result.stderr
    # What the include adds: no header by default, the key with the production file.
    sent = re.findall(r'^\s*proxy_set_header Authorization "Bearer ([^"]+)";', auth, re.M)
    assert sent == ([] if source == "development default" else [PRODUCTION_KEY])


def test_nginx_trusts_the_ingress_controller_and_the_service_trusts_nginx(
    rendered: list[Doc], tmp_path: Path
) -> None:
    """Two tiers, each trusting only what connects to it: NGINX the ingress controller's
    addresses (NGINX_TRUSTED_PROXIES, written by the image's start-up script and read by
    `nginx -t` here), the service NGINX's (CHAT_TRUSTED_PROXIES, one hop), which only NGINX
    and Prometheus may reach. Neither trusts every address: then any client could write
    its own X-Forwarded-For and pick its rate-limit bucket."""
    nginx = require_binary("nginx", package="nginx-light")
    (frontend,) = containers(workload(rendered, "frontend"))
    trusted = env_of(rendered, frontend)["NGINX_TRUSTED_PROXIES"]
    proxies = [ipaddress.ip_network(entry) for entry in re.split(r"[,\s]+", trusted) if entry]
    assert proxies
    assert all(network.prefixlen > 0 for network in proxies)
    server = NginxServer(
        binary=nginx,
        workdir=tmp_path / "nginx",
        service_url="http://127.0.0.1:9",
        trusted_proxies=trusted,
    )
    server.write_config()
    result = server.check_config()
    assert result.returncode == 0, result.stderr

    item = workload(rendered, "chat-service")
    (service,) = containers(item)
    settings = Settings.from_env(as_mounted(rendered, item, service, tmp_path / "mounted"))
    networks = [ipaddress.ip_network(entry) for entry in settings.trusted_proxies]
    assert networks
    assert all(network.prefixlen > 0 for network in networks)
    policy = find(rendered, "NetworkPolicy", "chat-service")
    peers = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert sorted(peers) == ["frontend", "prometheus"]


def test_switching_to_a_real_model_as_the_env_file_says(tmp_path: Path) -> None:
    """Put the key in the Secret, set CHAT_ASSISTANT=openai and uncomment the model lines:
    the settings select the model with that key, read from the mounted file."""
    k8s = copy_stack(tmp_path)
    env_file = k8s / "base" / "chat-service.env"
    text = env_file.read_text()
    assert "openai-api-key" in text
    switched = re.sub(r"^# ((?:CHAT_MODEL|OPENAI_BASE_URL)=)", r"\1", text, flags=re.MULTILINE)
    switched = switched.replace("CHAT_ASSISTANT=dummy", "CHAT_ASSISTANT=openai")
    env_file.write_text(switched)
    (k8s / "base" / "dev-secrets" / "openai-api-key").write_text("sk-test-not-a-key\n")
    docs = render_kustomize(k8s)

    item = workload(docs, "chat-service")
    (container,) = containers(item)
    env = as_mounted(docs, item, container, tmp_path / "mounted")
    assert "OPENAI_API_KEY" not in env
    settings = Settings.from_env(env)
    assert (settings.assistant, settings.model) == ("openai", env["CHAT_MODEL"])
    assert settings.openai_api_key == "sk-test-not-a-key"
    assert settings.openai_base_url == env["OPENAI_BASE_URL"]


# ---------------------------------------------------------------- sign-in with OpenID Connect

OIDC_VARIABLES = (
    "CHAT_OIDC_ISSUER",
    "CHAT_OIDC_AUDIENCE",
    "CHAT_OIDC_CLIENT_ID",
    "CHAT_OIDC_SCOPES",
)
# What an operator fills in for a Keycloak realm (README, "Sign in").
OIDC = {
    "CHAT_OIDC_ISSUER": "https://sso.example.com/realms/chat",
    "CHAT_OIDC_AUDIENCE": "chat-api",
    "CHAT_OIDC_CLIENT_ID": "chat-page",
    "CHAT_OIDC_SCOPES": "openid profile email offline_access",
}


def service_and_nginx_env(docs: list[Doc], root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """chat-service's environment (its Secrets' files mounted below ``root``) and NGINX's."""
    item = workload(docs, "chat-service")
    (service,) = containers(item)
    (nginx,) = containers(workload(docs, "frontend"))
    return as_mounted(docs, item, service, root), env_of(docs, nginx)


def origin_nginx_admits(issuer: str, conf_d: Path) -> str:
    """What the frontend image's start-up script makes of the issuer NGINX is given."""
    conf_d.mkdir(parents=True, exist_ok=True)
    written = write_oidc_origin(conf_d, issuer)
    assert written.returncode == 0, written.stderr
    return read_oidc_origin(conf_d)


@pytest.mark.parametrize("path", BUILDS)
def test_by_default_nobody_signs_in(path: str, tmp_path: Path) -> None:
    """The settings are there to fill in, and empty: the service takes empty as unset (the page
    is anonymous, or asks for a key when the Secret holds some), and NGINX's start-up script
    writes the page's policy without sign-in."""
    service, nginx = service_and_nginx_env(build(path), tmp_path / "mounted")
    assert {name: service[name] for name in OIDC_VARIABLES} == dict.fromkeys(OIDC_VARIABLES, "")
    settings = Settings.from_env(service)
    assert (settings.oidc_issuer, settings.oidc_audience) == (None, None)
    assert nginx["CHAT_OIDC_ISSUER"] == ""
    assert origin_nginx_admits(nginx["CHAT_OIDC_ISSUER"], tmp_path / "conf.d") == ""


def sign_in_overlay(k8s: Path) -> Path:
    """An overlay of one's own that merges the settings into the service's ConfigMap."""
    overlay = k8s / "overlays" / "sign-in"
    overlay.mkdir(parents=True)
    literals = "".join(f"      - {name}={value}\n" for name, value in OIDC.items())
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../../base\n"
        "configMapGenerator:\n"
        "  - name: chat-service-config\n    behavior: merge\n    literals:\n" + literals
    )
    return overlay


@pytest.mark.parametrize("how", ["the env file", "an overlay"])
def test_signing_in_with_openid_connect_reaches_the_service_and_nginx(
    how: str, rendered: list[Doc], tmp_path: Path
) -> None:
    """Set once, in the service's ConfigMap (chat-service.env, or an overlay merging into it):
    the service gets every setting, and NGINX the same issuer, through a reference that
    follows the ConfigMap's generated name, so its pods restart with the new value too."""
    k8s = copy_stack(tmp_path / "stack")
    if how == "the env file":
        env_file = k8s / "base" / "chat-service.env"
        text = env_file.read_text()
        for name, value in OIDC.items():
            text, count = re.subn(rf"^{name}=$", f"{name}={value}", text, flags=re.MULTILINE)
            assert count == 1, name
        env_file.write_text(text)
        docs = render_kustomize(k8s)
    else:
        docs = render_kustomize(sign_in_overlay(k8s))
    service, nginx = service_and_nginx_env(docs, tmp_path / "mounted")
    assert {name: service[name] for name in OIDC} == OIDC
    settings = Settings.from_env(service)
    assert settings.oidc_issuer == OIDC["CHAT_OIDC_ISSUER"]
    assert settings.oidc_audience == OIDC["CHAT_OIDC_AUDIENCE"]
    assert nginx["CHAT_OIDC_ISSUER"] == settings.oidc_issuer
    assert origin_nginx_admits(nginx["CHAT_OIDC_ISSUER"], tmp_path / "conf.d") == (
        " https://sso.example.com"
    )
    (container,) = containers(workload(docs, "frontend"))
    (entry,) = [e for e in container["env"] if e["name"] == "CHAT_OIDC_ISSUER"]
    reference = entry["valueFrom"]["configMapKeyRef"]["name"]
    assert reference == find(docs, "ConfigMap", "chat-service-config")["metadata"]["name"]
    assert reference != find(rendered, "ConfigMap", "chat-service-config")["metadata"]["name"]


# ---------------------------------------------------------------- the SQLite overlay


def test_the_sqlite_overlay_is_one_writer_with_its_own_volume(
    sqlite_rendered: list[Doc], tmp_path: Path
) -> None:
    docs = sqlite_rendered
    item = workload(docs, "chat-service")
    assert item["kind"] == "StatefulSet"
    assert item["spec"]["replicas"] == 1
    assert find(docs, "Service", item["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    source = (REPO / SQLITE_OVERLAY / "chat-service.yaml").read_text()
    assert "SQLite" in source
    assert "one writer" in source
    (container,) = containers(item)
    env = env_of(docs, container)
    assert not [k for k in env if k.startswith("CHAT_DATABASE_URL")]
    (claim,) = item["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == str(PurePosixPath(env["CHAT_DB_PATH"]).parent)
    assert (
        pod_spec(item)["securityContext"]["fsGroup"] == (container["securityContext"]["runAsGroup"])
    )
    settings = Settings.from_env(as_mounted(docs, item, container, tmp_path))
    assert settings.database_url is None
    assert str(settings.db_path) == env["CHAT_DB_PATH"]
    # Never scaled, and nothing of PostgreSQL.
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert not named(docs, "PodDisruptionBudget", "chat-service")
    assert not named(docs, "Deployment", "chat-service")
    for kind in ("StatefulSet", "Service", "Secret", "NetworkPolicy"):
        assert not named(docs, kind, "postgres"), kind


def test_the_sqlite_container_is_the_base_one_but_for_the_database(
    rendered: list[Doc], sqlite_rendered: list[Doc]
) -> None:
    base = workload(rendered, "chat-service")
    single = workload(sqlite_rendered, "chat-service")
    (scaled,) = containers(base)
    (alone,) = containers(single)

    def without(container: Doc, *keys: str) -> Doc:
        return {k: v for k, v in container.items() if k not in keys}

    assert without(alone, "env", "volumeMounts") == without(scaled, "env", "volumeMounts")
    assert env_of(sqlite_rendered, alone).keys() - env_of(rendered, scaled).keys() == {
        "CHAT_DB_PATH"
    }
    assert env_of(rendered, scaled).keys() - env_of(sqlite_rendered, alone).keys() == {
        "CHAT_DATABASE_URL_FILE"
    }
    assert {m["mountPath"] for m in alone["volumeMounts"]} - {
        m["mountPath"] for m in scaled["volumeMounts"]
    } == {"/data"}
    for field in (
        "automountServiceAccountToken",
        "enableServiceLinks",
        "terminationGracePeriodSeconds",
    ):
        assert pod_spec(single)[field] == pod_spec(base)[field], field


# ---------------------------------------------------------------- the Prometheus Operator overlay


def test_the_operator_overlay_scrapes_every_pod_with_a_service_monitor(
    operator_rendered: list[Doc],
) -> None:
    docs = operator_rendered
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    # By hand what a schema would check: the operator's API, this namespace, a selector
    # and endpoints of the shape it reads.
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = monitor["spec"]["selector"]
    services = [
        d
        for d in docs
        if d["kind"] == "Service" and selects(selector, d["metadata"].get("labels", {}))
    ]
    # Exactly one Service, or each pod would be scraped once per Service.
    assert [s["metadata"]["name"] for s in services] == ["chat-service"]
    (service,) = services
    deployment = find(docs, "Deployment", "chat-service")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"\d+s", endpoint["interval"])
    assert int(endpoint["scrapeTimeout"][:-1]) < int(endpoint["interval"][:-1])
    # The endpoint's port is a port *name* of the Service, leading to the service's port.
    assert isinstance(endpoint["port"], str)
    (container,) = containers(deployment)
    target = service_port(service, endpoint["port"])["targetPort"]
    assert container_port(container, target) == Settings().port


def test_the_operator_overlay_leaves_the_observability_stack_to_the_cluster(
    operator_rendered: list[Doc],
) -> None:
    docs = operator_rendered
    for name in BUNDLED_OBSERVABILITY:
        for kind in ("Deployment", "Service", "NetworkPolicy"):
            assert not named(docs, kind, name), f"{kind}/{name}"
    leftovers = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] in ("ConfigMap", "Secret")
        and d["metadata"]["name"].startswith(BUNDLED_OBSERVABILITY)
    ]
    # The dashboard stays, for a Grafana sidecar to load.
    (dashboards,) = leftovers
    config = find(docs, "ConfigMap", "grafana-dashboards")
    assert config["metadata"]["name"] == dashboards
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = REPO / "observability" / "grafana" / "dashboards" / "chat-service.json"
    assert config["data"]["chat-service.json"] == dashboard.read_text()
    # Only our Prometheus used the headless Service.
    assert not named(docs, "Service", "chat-service-replicas")


def test_the_operator_overlay_sends_traces_to_the_clusters_collector_and_admits_it(
    operator_rendered: list[Doc],
) -> None:
    docs = operator_rendered
    deployment = find(docs, "Deployment", "chat-service")
    (container,) = containers(deployment)
    endpoint = urlsplit(env_of(docs, container)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname is not None
    assert endpoint.port is not None
    # service.namespace[.svc...]: a collector in another namespace.
    service, namespace, *_ = endpoint.hostname.split(".")
    assert namespace != NAMESPACE
    assert service not in {w["metadata"]["name"] for w in workloads(docs)}

    def rules(direction: str) -> list[Doc]:
        policy_type = direction.capitalize()
        return [
            rule
            for policy in docs
            if policy["kind"] == "NetworkPolicy"
            and policy_type in policy["spec"]["policyTypes"]
            and selects(policy["spec"]["podSelector"], pod_labels(deployment))
            for rule in policy["spec"].get(direction, [])
        ]

    def from_namespace(rule: Doc, key: str, port: int) -> bool:
        ports = {p["port"] for p in rule.get("ports", [])}
        peers = rule.get(key, [])
        return port in ports and any(
            peer.get("namespaceSelector", {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": namespace}
            for peer in peers
        )

    assert any(from_namespace(rule, "to", endpoint.port) for rule in rules("egress"))
    # The cluster's Prometheus scrapes from the same namespace.
    assert any(from_namespace(rule, "from", Settings().port) for rule in rules("ingress"))
