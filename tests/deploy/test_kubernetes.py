"""k8s/: renders with kubectl, validates against the Kubernetes schemas, and is hardened."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
from pathlib import Path, PurePosixPath

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from chat_service.config import Settings
from chat_service.telemetry.tracing import EXPORT_FLUSH_TIMEOUT_S
from tests.deploy.stack import (
    COMPONENTS,
    KUBERNETES_VERSION,
    REPO,
    Doc,
    container_port,
    containers,
    env_of,
    find,
    pod_spec,
    run,
    service_port,
    workloads,
)
from tests.support.binaries import require_binary

NAMESPACE = "chat-service"
COMMON_LABELS = {
    "app.kubernetes.io/part-of": "chat-service",
    "app.kubernetes.io/managed-by": "kustomize",
}
# The model API's key: an optional Secret, mounted as a file that OPENAI_API_KEY_FILE names.
MODEL_SECRET = "chat-service-model"
MODEL_KEY_FILE = "/var/run/secrets/chat-service/model/api-key"
# A tag with at least a major.minor version: no `latest`, no floating `3` or `alpine`.
PINNED_IMAGE = re.compile(r"[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?")


def workload(rendered: list[Doc], name: str) -> Doc:
    found = [w for w in workloads(rendered) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload named {name}"
    return found[0]


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[Doc]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {"Namespace", "StatefulSet", "Deployment", "Service", "ConfigMap"} <= kinds
    assert {"Ingress", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    failures = []
    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
    assert failures == []


def test_the_stack_has_one_workload_per_component(rendered: list[Doc]) -> None:
    assert sorted(w["metadata"]["name"] for w in workloads(rendered)) == sorted(COMPONENTS)


def test_objects_share_the_namespace_and_the_common_labels(rendered: list[Doc]) -> None:
    for doc in rendered:
        labels = doc["metadata"].get("labels", {})
        assert COMMON_LABELS.items() <= labels.items(), doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    for doc in [*workloads(rendered), *(d for d in rendered if d["kind"] == "Service")]:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] in COMPONENTS
    for item in workloads(rendered):
        template_labels = item["spec"]["template"]["metadata"]["labels"]
        assert COMMON_LABELS.items() <= template_labels.items()
        assert item["spec"]["selector"]["matchLabels"].items() <= template_labels.items()


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_container_is_pinned_bounded_probed_and_locked_down(
    rendered: list[Doc], name: str
) -> None:
    item = workload(rendered, name)
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


def test_services_select_their_pods_and_target_named_container_ports(
    rendered: list[Doc],
) -> None:
    services = [d for d in rendered if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} >= set(COMPONENTS)
    for service in services:
        selector = service["spec"]["selector"]
        matched = [
            w
            for w in workloads(rendered)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, service["metadata"]["name"]
        (container,) = pod_spec(matched[0])["containers"]
        for port in service["spec"]["ports"]:
            assert container_port(container, port["targetPort"]) == port["port"]


def test_chat_service_is_one_sqlite_writer_with_its_own_volume(rendered: list[Doc]) -> None:
    item = workload(rendered, "chat-service")
    assert item["kind"] == "StatefulSet"
    assert item["spec"]["replicas"] == 1
    assert find(rendered, "Service", item["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    source = (REPO / "k8s" / "chat-service.yaml").read_text()
    assert "SQLite" in source
    assert "one writer" in source
    (container,) = pod_spec(item)["containers"]
    env = env_of(rendered, container)
    assert env["CHAT_HOST"] == "0.0.0.0"
    db_dir = str(PurePosixPath(env["CHAT_DB_PATH"]).parent)
    (claim,) = item["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == db_dir
    assert (
        pod_spec(item)["securityContext"]["fsGroup"] == container["securityContext"]["runAsGroup"]
    )


def test_chat_service_probes_and_graceful_shutdown_fit_the_service(rendered: list[Doc]) -> None:
    item = workload(rendered, "chat-service")
    (container,) = pod_spec(item)["containers"]
    env = env_of(rendered, container)
    port = int(env["CHAT_PORT"])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container_port(container, container[probe]["httpGet"]["port"]) == port
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    shutdown = float(env.get("CHAT_SHUTDOWN_TIMEOUT", Settings().shutdown_timeout_s))
    shutdown += EXPORT_FLUSH_TIMEOUT_S
    grace = pod_spec(item)["terminationGracePeriodSeconds"]
    # The kubelet sends SIGTERM after preStop; the service then needs up to its shutdown
    # timeout plus the span flush. All must fit in the grace period, with room to spare.
    assert pre_stop + shutdown + 5 <= grace


def test_frontend_runs_two_replicas_protected_by_a_disruption_budget(
    rendered: list[Doc],
) -> None:
    item = workload(rendered, "frontend")
    assert item["kind"] == "Deployment"
    assert item["spec"]["replicas"] == 2
    budget = find(rendered, "PodDisruptionBudget", "frontend")
    labels = item["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < item["spec"]["replicas"]
    (container,) = pod_spec(item)["containers"]
    port = int(env_of(rendered, container)["NGINX_PORT"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/nginx-health"
        assert container_port(container, container[probe]["httpGet"]["port"]) == port


def test_the_ingress_sends_everything_to_the_frontend(rendered: list[Doc]) -> None:
    ingress = find(rendered, "Ingress", "frontend")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = find(rendered, "Service", backend["name"])
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "frontend"
    service_port(service, backend["port"].get("name") or backend["port"]["number"])


def test_observability_configmaps_are_the_files_compose_mounts(rendered: list[Doc]) -> None:
    collector = find(rendered, "ConfigMap", "otel-collector-config")
    assert (
        collector["data"]["config.yaml"] == (REPO / "observability/otel-collector.yaml").read_text()
    )
    prometheus = find(rendered, "ConfigMap", "prometheus-config")
    assert (
        prometheus["data"]["prometheus.yml"] == (REPO / "observability/prometheus.yml").read_text()
    )
    rule_files = sorted((REPO / "observability" / "rules").glob("*.yml"))
    assert rule_files
    for path in rule_files:
        assert prometheus["data"][path.name] == path.read_text()

    item = workload(rendered, "prometheus")
    volume = next(v for v in pod_spec(item)["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == prometheus["metadata"]["name"]
    layout = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
    assert layout == {
        "prometheus.yml": "prometheus.yml",
        **{p.name: f"rules/{p.name}" for p in rule_files},
    }
    (container,) = pod_spec(item)["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert f"--config.file={mount['mountPath']}/prometheus.yml" in container["args"]
    assert "--enable-feature=exemplar-storage" in container["args"]

    item = workload(rendered, "otel-collector")
    (container,) = pod_spec(item)["containers"]
    volume = next(v for v in pod_spec(item)["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == collector["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert f"--config={mount['mountPath']}/config.yaml" in container["args"]


def test_the_model_key_is_an_optional_secret_mounted_as_a_file(rendered: list[Doc]) -> None:
    statefulset = find(rendered, "StatefulSet", "chat-service")
    (container,) = containers(statefulset)
    volumes = {volume["name"]: volume for volume in pod_spec(statefulset)["volumes"]}
    secret = volumes["model-key"]["secret"]
    assert (secret["secretName"], secret["optional"]) == (MODEL_SECRET, True)
    # Readable by the service's group (fsGroup) only, not by others.
    assert secret["defaultMode"] == 0o440
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["model-key"]["readOnly"] is True
    assert mounts["model-key"]["mountPath"] == str(PurePosixPath(MODEL_KEY_FILE).parent)
    # The base applies without the Secret: nothing else refers to it, and the service
    # answers with the dummy until the env file says otherwise.
    assert not [doc for doc in rendered if doc["kind"] == "Secret"]
    env = env_of(rendered, container)
    assert env["CHAT_ASSISTANT"] == "dummy"
    assert "OPENAI_API_KEY" not in env, "a key never goes in a ConfigMap"
    assert "OPENAI_API_KEY_FILE" not in env, "only once the Secret exists"
    assert "CHAT_MODEL" not in env


def documented(env_text: str, pattern: str) -> str:
    """The one comment line of the env file matching ``pattern``, without its ``#``."""
    lines = [line.lstrip("#").strip() for line in env_text.splitlines() if line.startswith("#")]
    [line] = [line for line in lines if re.search(pattern, line)]
    return line


def test_switching_to_a_real_model_as_the_env_file_says(tmp_path: Path) -> None:
    """Create the Secret with the documented command, uncomment the model lines and set
    CHAT_ASSISTANT=openai: kustomize renders it, the key file the service is told to read is
    the Secret's key in the mount, and the settings select the model with that key."""
    kubectl = require_binary("kubectl", package="kubectl")
    env_file = REPO / "k8s" / "chat-service.env"
    env_text = env_file.read_text()

    command = documented(env_text, r"create secret generic")
    assert command.startswith(
        f"kubectl -n {NAMESPACE} create secret generic {MODEL_SECRET} --from-literal=api-key="
    ), command
    args = shlex.split(command.replace("sk-...", "sk-test-not-a-key"))[1:]
    created = run(kubectl, *args, "--dry-run=client", "-o", "yaml")
    assert created.returncode == 0, created.stderr

    for folder in ("k8s", "observability"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    switched = re.sub(
        r"^# ((?:CHAT_MODEL|OPENAI_BASE_URL|OPENAI_API_KEY_FILE)=)",
        r"\1",
        env_text,
        flags=re.MULTILINE,
    )
    switched = switched.replace("CHAT_ASSISTANT=dummy", "CHAT_ASSISTANT=openai")
    (tmp_path / "k8s" / "chat-service.env").write_text(switched)
    (tmp_path / "k8s" / "model-secret.yaml").write_text(created.stdout)
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    config = yaml.safe_load(kustomization.read_text())
    config["resources"].append("model-secret.yaml")
    kustomization.write_text(yaml.safe_dump(config))
    result = run(kubectl, "kustomize", str(tmp_path / "k8s"))
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    statefulset = find(docs, "StatefulSet", "chat-service")
    (container,) = containers(statefulset)
    env = env_of(docs, container)
    assert env["CHAT_ASSISTANT"] == "openai"
    assert env["OPENAI_API_KEY_FILE"] == MODEL_KEY_FILE
    assert "OPENAI_API_KEY" not in env
    secret = find(docs, "Secret", MODEL_SECRET)
    assert secret["metadata"]["namespace"] == NAMESPACE
    key = base64.b64decode(secret["data"][PurePosixPath(MODEL_KEY_FILE).name]).decode()
    assert key == "sk-test-not-a-key"

    # What the kubelet would mount, written where the test can read it.
    mounted = tmp_path / "mounted" / PurePosixPath(MODEL_KEY_FILE).name
    mounted.parent.mkdir()
    mounted.write_text(key)
    settings = Settings.from_env({**env, "OPENAI_API_KEY_FILE": str(mounted)})
    assert (settings.assistant, settings.model) == ("openai", env["CHAT_MODEL"])
    assert settings.openai_api_key == key
    assert settings.openai_base_url == env["OPENAI_BASE_URL"]
