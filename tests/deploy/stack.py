"""Reading the deployment files the way their tools do: YAML, env files, the Dockerfile.

The tests in this folder check the stack's files with the tools themselves (kubectl,
kubernetes-validate, check-jsonschema, promtool, hadolint) and check that the files agree
with each other; these helpers only parse.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.support.binaries import require_binary

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The Kubernetes version whose schemas the manifests must satisfy (kubernetes-validate).
KUBERNETES_VERSION = "1.33.0"

# The components of the stack: the compose service names, which are also the Kubernetes
# Service and workload names.
COMPONENTS = (
    "frontend",
    "chat-service",
    "postgres",
    "otel-collector",
    "jaeger",
    "prometheus",
    "grafana",
)
# What `kubectl apply -k` is pointed at: the stack (k8s/, which is k8s/base/) and its overlays.
BASE = "k8s/"
SQLITE_OVERLAY = "k8s/overlays/sqlite/"
OPERATOR_OVERLAY = "k8s/overlays/prometheus-operator/"
BUILDS = (BASE, SQLITE_OVERLAY, OPERATOR_OVERLAY)

Doc = dict[str, Any]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize's configMapGenerator ``envs`` reads them."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def venv_tool(name: str, package: str) -> str:
    """A tool the test extra installs into the virtualenv (it may not be on PATH)."""
    return require_binary(name, package=package, path=str(VENV_BIN / name))


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def render_kustomize(path: str | Path = BASE) -> list[Doc]:
    """``kubectl kustomize path``, parsed: what ``kubectl apply -k path`` would send."""
    kubectl = require_binary("kubectl", package="kubectl")
    result = run(kubectl, "kustomize", str(path))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def rendered_build(path: str) -> tuple[Doc, ...]:
    """One of BUILDS, rendered once per session (callers must not change it)."""
    return tuple(render_kustomize(path))


# ---------------------------------------------------------------- Kubernetes objects


def generated_from(kind: str, name: str, actual: str) -> bool:
    """Whether ``actual`` is ``name``, or a ConfigMap/Secret kustomize generated as ``name``
    (the name and a hash of the content)."""
    return actual == name or (
        kind in ("ConfigMap", "Secret") and bool(re.fullmatch(f"{name}-[a-z0-9]{{10}}", actual))
    )


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    """The object of ``kind`` named ``name`` (generated ConfigMaps and Secrets: by name before
    the hash)."""
    for doc in docs:
        if doc["kind"] == kind and generated_from(kind, name, doc["metadata"]["name"]):
            return doc
    raise AssertionError(f"no {kind} named {name} in the rendered manifests")


def named(docs: list[Doc], kind: str, name: str) -> list[Doc]:
    """The objects of ``kind`` named ``name`` (or generated as ``name``): none or one."""
    return [
        d for d in docs if d["kind"] == kind and generated_from(kind, name, d["metadata"]["name"])
    ]


def workloads(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_port(container: Doc, port: int | str) -> int:
    """The number of a container port given by number or by name."""
    for entry in container.get("ports", []):
        if port in (entry["containerPort"], entry.get("name")):
            return int(entry["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {port!r}")


def service_port(service: Doc, port: int | str) -> Doc:
    for entry in service["spec"]["ports"]:
        if port in (entry["port"], entry.get("name")):
            return dict(entry)
    raise AssertionError(f"Service {service['metadata']['name']} has no port {port!r}")


def env_of(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The container's environment: its envFrom ConfigMaps, then its own env entries (a value,
    or a key of a ConfigMap: ``valueFrom.configMapKeyRef``, which must exist)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = find(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            env[item["name"]] = item["value"]
    return env


def secret_value(secret: Doc, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def mounted_secrets(docs: list[Doc], workload: Doc, container: Doc) -> dict[str, tuple[str, str]]:
    """The files the kubelet would mount into ``container`` from Secrets:
    path -> (the Secret's name before its hash, key)."""
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("secret")
        if source is None:
            continue
        secret = find(docs, "Secret", source["secretName"])
        name = re.sub(r"-[a-z0-9]{10}$", "", secret["metadata"]["name"])
        items = source.get("items") or [{"key": k, "path": k} for k in secret["data"]]
        for item in items:
            assert item["key"] in secret["data"], f"{name} has no key {item['key']}"
            files[str(PurePosixPath(mount["mountPath"]) / item["path"])] = (name, item["key"])
    return files


def as_mounted(docs: list[Doc], workload: Doc, container: Doc, root: Path) -> dict[str, str]:
    """The container's environment with its Secret files written below ``root``, as the
    kubelet would mount them, and each variable naming one of them pointed there."""
    env = env_of(docs, container)
    files = mounted_secrets(docs, workload, container)
    for path, (name, key) in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(secret_value(find(docs, "Secret", name), key))
    return {k: str(root / v.lstrip("/")) if v in files else v for k, v in env.items()}


# ---------------------------------------------------------------- compose


# Compose's interpolation: ${NAME}, ${NAME:-default} (unset or empty) and ${NAME-default}
# (unset); $$ is a literal dollar sign.
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """``value`` (the parsed compose file, or a part of it) as compose fills it in from
    ``environ``, the environment of the shell that runs ``docker compose``."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.groups()
        current = environ.get(name)
        if operator == ":-" and not current:
            return str(default)
        if operator == "-" and current is None:
            return str(default)
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def compose(environ: dict[str, str] | None = None) -> Doc:
    """docker-compose.yml as compose reads it, from a shell whose environment is ``environ``
    (none of the variables set, by default)."""
    doc: Doc = interpolate(load_yaml(REPO / "docker-compose.yml"), environ or {})
    return doc


def published_ports(service: Doc) -> dict[int, int]:
    """container port -> host port, from short-syntax ``[ip:]host:container`` entries."""
    mapping = {}
    for entry in service.get("ports", []):
        *_, host, target = str(entry).split(":")
        mapping[int(target)] = int(host)
    return mapping


def bind_mounts(service: Doc) -> dict[str, str]:
    """container path -> repository path, for the service's ``./...`` bind mounts."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = str(entry).split(":")
        if source.startswith("./"):
            mounts[target] = source[2:]
    return mounts


# ---------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: str


def dockerfile(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions = []
    stage = ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def stage(instructions: list[Instruction], name: str) -> list[Instruction]:
    found = [i for i in instructions if i.stage == name]
    assert found, f"the Dockerfile has no stage named {name}"
    return found


def stage_base(instructions: list[Instruction], name: str) -> str:
    """The image a stage is built FROM, following stages built on other stages."""
    image = stage(instructions, name)[0].args.split()[0]
    stages = {i.stage for i in instructions}
    return stage_base(instructions, image) if image in stages else image


def stage_env(instructions: list[Instruction], name: str) -> dict[str, str]:
    """ENV values a stage sets, including those it inherits from a parent stage."""
    base = stage(instructions, name)[0].args.split()[0]
    env = stage_env(instructions, base) if base in {i.stage for i in instructions} else {}
    for instruction in stage(instructions, name):
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, or None (shell form)."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def healthcheck_command(args: str) -> list[str] | None:
    """The exec-form command of a ``HEALTHCHECK [--options] CMD [...]`` instruction."""
    _, _, command = args.partition("CMD ")
    return exec_form(command.strip())


# ---------------------------------------------------------------- .dockerignore


def dockerignore_patterns(
    path: Path = REPO / ".dockerignore",
) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) for each pattern, with the Go filepath.Match semantics Docker uses."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", pattern):
            if part in ("**", "**/"):
                regex += "(.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("["):
                regex += part
            else:
                regex += re.escape(part)
        patterns.append((negated, re.compile(regex)))
    return patterns


def in_build_context(relative: str) -> bool:
    """Whether .dockerignore lets ``relative`` (a repository path) into the build context.

    Like Docker: the last pattern that matches the path or one of its parent directories wins.
    """
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in dockerignore_patterns():
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def repo_files(pattern: str) -> Iterator[str]:
    """Repository files matching a Dockerfile COPY source (a file, a directory or a glob)."""
    path = REPO / pattern
    if path.is_dir():
        yield from (str(p.relative_to(REPO)) for p in path.rglob("*") if p.is_file())
    elif any(ch in pattern for ch in "*?["):
        yield from (str(p.relative_to(REPO)) for p in REPO.glob(pattern) if p.is_file())
    elif path.is_file():
        yield pattern
