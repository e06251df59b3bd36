"""docker-compose.yml: valid per the compose specification, and a stack that starts in order."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest

from chat_service.config import Settings
from chat_service.telemetry.tracing import EXPORT_FLUSH_TIMEOUT_S
from tests.deploy.stack import (
    COMPONENTS,
    REPO,
    Doc,
    bind_mounts,
    compose,
    interpolate,
    load_yaml,
    published_ports,
    run,
    venv_tool,
)
from tests.e2e.nginx import read_oidc_origin, write_oidc_origin

# The UIs the README sends people to: compose service -> container port.
UI_PORTS = {"frontend": 8085, "jaeger": 16686, "prometheus": 9090, "grafana": 3000}
# A full version: major.minor.patch, or major.minor where that is the whole version
# (PostgreSQL's 17.6), with an optional variant (-alpine3.22).
PINNED_TAG = re.compile(r"[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?")
# The official image's data folder (PGDATA), and the database and user chat-service uses.
POSTGRES_DATA = "/var/lib/postgresql/data"
POSTGRES_USER = "chat"
POSTGRES_DB = "chat"
# Images without a shell or HTTP client cannot run a healthcheck; what depends on them
# waits for service_started instead.
NO_HEALTHCHECK = {"otel-collector"}
# The model settings compose passes through from the shell that runs it: a value the shell
# may give, the Settings field it sets, and what that field becomes.
MODEL_SETTINGS: dict[str, tuple[str, str, object]] = {
    "CHAT_ASSISTANT": ("openai", "assistant", "openai"),
    "CHAT_MODEL": ("llama3.2", "model", "llama3.2"),
    "CHAT_SYSTEM_PROMPT": ("Be brief.", "system_prompt", "Be brief."),
    "CHAT_MAX_OUTPUT_TOKENS": ("512", "max_output_tokens", 512),
    "CHAT_MODEL_TIMEOUT_S": ("90", "model_timeout_s", 90.0),
    "CHAT_MODEL_MAX_RETRIES": ("4", "model_max_retries", 4),
    "CHAT_MODEL_MAX_CONCURRENCY": ("8", "model_max_concurrency", 8),
    "CHAT_REPLY_CACHE_TTL_S": ("300", "reply_cache_ttl_s", 300.0),
    "CHAT_ASSISTANT_TOKEN_MS": ("100", "assistant_token_ms", 100),
    "OPENAI_BASE_URL": (
        "http://host.docker.internal:11434/v1",
        "openai_base_url",
        "http://host.docker.internal:11434/v1",
    ),
    "OPENAI_API_KEY": ("ollama", "openai_api_key", "ollama"),
}
# Today's behaviour, when the shell sets none of them: the dummy, and the documented defaults.
MODEL_DEFAULTS: dict[str, object] = {
    "assistant": "dummy",
    "model": None,
    "system_prompt": None,
    "max_output_tokens": None,
    "model_timeout_s": 60.0,
    "model_max_retries": 2,
    "model_max_concurrency": 32,
    "reply_cache_ttl_s": 0.0,
    "assistant_token_ms": 0,
    "openai_base_url": None,
    "openai_api_key": None,
}

# Sign-in with OpenID Connect, from the shell that runs compose (a Keycloak realm here): the
# service gets all four, NGINX the issuer, for the page's Content-Security-Policy.
OIDC_SETTINGS = {
    "CHAT_OIDC_ISSUER": "https://sso.example.com/realms/chat",
    "CHAT_OIDC_AUDIENCE": "chat-api",
    "CHAT_OIDC_CLIENT_ID": "chat-page",
    "CHAT_OIDC_SCOPES": "openid profile email offline_access",
}


def test_validates_against_the_compose_specification() -> None:
    tool = venv_tool("check-jsonschema", package="PyPI check-jsonschema")
    result = run(tool, "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_the_whole_stack(compose_file: Doc) -> None:
    assert set(compose_file["services"]) == set(COMPONENTS)


@pytest.mark.parametrize("name", COMPONENTS)
def test_service_is_pinned_restarted_and_health_checked(compose_file: Doc, name: str) -> None:
    service = compose_file["services"][name]
    assert PINNED_TAG.fullmatch(service["image"]), service["image"]
    assert service["restart"] in ("unless-stopped", "always")
    if name in NO_HEALTHCHECK:
        assert "healthcheck" not in service
        return
    check = service["healthcheck"]
    assert check["test"][0] == "CMD"
    assert {"interval", "timeout", "retries", "start_period"} <= check.keys()


def test_dependencies_wait_for_health_where_there_is_one(compose_file: Doc) -> None:
    services = compose_file["services"]
    edges = 0
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            edges += 1
            expected = "service_started" if dependency in NO_HEALTHCHECK else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    assert services["frontend"]["depends_on"] == {"chat-service": {"condition": "service_healthy"}}
    assert services["chat-service"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert edges >= 6


def test_our_images_build_from_the_dockerfile_targets(compose_file: Doc) -> None:
    for name, target in (("chat-service", "service"), ("frontend", "frontend")):
        build = compose_file["services"][name]["build"]
        assert build == {"context": ".", "target": target}


def test_the_uis_are_published_on_localhost(compose_file: Doc) -> None:
    for name, port in UI_PORTS.items():
        service = compose_file["services"][name]
        assert published_ports(service) == {port: port}
        assert all(str(entry).startswith("127.0.0.1:") for entry in service["ports"])


def test_chat_service_listens_everywhere_stores_in_postgres_and_sends_traces(
    compose_file: Doc,
) -> None:
    service = compose_file["services"]["chat-service"]
    env = service["environment"]
    assert env["CHAT_HOST"] == "0.0.0.0"
    settings = Settings.from_env(env)
    assert settings.database_url is not None
    url = urlsplit(settings.database_url)
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert "CHAT_DB_PATH" not in env
    assert env["OTEL_SERVICE_NAME"] == "chat-service"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    # Readiness (the store answers), not just liveness, before the frontend starts.
    assert any("/readyz" in part for part in service["healthcheck"]["test"])
    grace = int(service["stop_grace_period"].removesuffix("s"))
    shutdown = float(env.get("CHAT_SHUTDOWN_TIMEOUT", Settings().shutdown_timeout_s))
    assert grace > shutdown + EXPORT_FLUSH_TIMEOUT_S


def test_our_containers_are_read_only_and_unprivileged(compose_file: Doc) -> None:
    for name in ("chat-service", "frontend"):
        service = compose_file["services"][name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "/tmp" in service["tmpfs"]


def test_the_frontend_links_traces_to_the_published_jaeger(compose_file: Doc) -> None:
    service = compose_file["services"]["frontend"]
    (config,) = service["configs"]
    assert config["target"] == service["environment"]["FRONTEND_ROOT"] + "/config.json"
    content = json.loads(compose_file["configs"][config["source"]]["content"])
    jaeger_port = published_ports(compose_file["services"]["jaeger"])[16686]
    assert content == {"jaegerBaseUrl": f"http://localhost:{jaeger_port}"}


def test_prometheus_loads_the_repository_config_rules_and_stores_exemplars(
    compose_file: Doc,
) -> None:
    service = compose_file["services"]["prometheus"]
    mounts = bind_mounts(service)
    config_path = next(
        arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--config.file=")
    )
    assert mounts[config_path] == "observability/prometheus.yml"
    config_dir = PurePosixPath(config_path).parent
    for pattern in load_yaml(REPO / "observability/prometheus.yml")["rule_files"]:
        # rules/*.yml next to the config in the container is observability/rules/ here.
        container_dir = str(config_dir / PurePosixPath(pattern).parent)
        repo_dir = REPO / mounts[container_dir]
        assert list(repo_dir.glob(PurePosixPath(pattern).name))
    assert "--enable-feature=exemplar-storage" in service["command"]


def test_the_collector_runs_the_repository_config(compose_file: Doc) -> None:
    service = compose_file["services"]["otel-collector"]
    (flag,) = service["command"]
    assert (
        bind_mounts(service)[flag.removeprefix("--config=")] == "observability/otel-collector.yaml"
    )


def test_grafana_is_provisioned_from_the_repository(compose_file: Doc) -> None:
    service = compose_file["services"]["grafana"]
    mounts = bind_mounts(service)
    assert mounts["/etc/grafana/provisioning"] == "observability/grafana/provisioning"
    providers = load_yaml(REPO / "observability/grafana/provisioning/dashboards/dashboards.yml")
    (provider,) = providers["providers"]
    dashboards_dir = REPO / mounts[provider["options"]["path"]]
    assert (dashboards_dir / "chat-service.json").is_file()
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / PurePosixPath(home).name).is_file()


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A:-d}", {"A": "x"}, "x"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A}", {}, ""),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("$$A", {"A": "x"}, "$A"),
    ],
)
def test_interpolation_reads_the_compose_file_as_compose_does(
    text: str, environ: dict[str, str], expected: str
) -> None:
    assert interpolate(text, environ) == expected


def test_the_assistant_is_the_dummy_unless_the_shell_names_a_model() -> None:
    assert {field for _, field, _ in MODEL_SETTINGS.values()} == MODEL_DEFAULTS.keys()
    environment = compose()["services"]["chat-service"]["environment"]
    assert MODEL_SETTINGS.keys() <= environment.keys()
    settings = Settings.from_env(environment)
    assert {field: getattr(settings, field) for field in MODEL_DEFAULTS} == MODEL_DEFAULTS
    # The same when the shell has the variables, but empty.
    empty = compose(dict.fromkeys(MODEL_SETTINGS, ""))["services"]["chat-service"]
    settings = Settings.from_env(empty["environment"])
    assert {field: getattr(settings, field) for field in MODEL_DEFAULTS} == MODEL_DEFAULTS


def test_the_shell_sets_every_model_setting() -> None:
    shell = {variable: raw for variable, (raw, _, _) in MODEL_SETTINGS.items()}
    environment = compose(shell)["services"]["chat-service"]["environment"]
    settings = Settings.from_env(environment)
    for variable, (_, field, value) in MODEL_SETTINGS.items():
        assert getattr(settings, field) == value, variable


def test_chat_service_scales(compose_file: Doc) -> None:
    """`docker compose up --scale chat-service=3`: replicas cannot share a fixed container
    name or host port, and keep no state of their own."""
    service = compose_file["services"]["chat-service"]
    assert "container_name" not in service
    assert "ports" not in service
    assert "volumes" not in service
    # NGINX reaches them by the service name, which resolves to every replica.
    assert compose_file["services"]["frontend"]["environment"]["CHAT_SERVICE_URL"] == (
        f"http://chat-service:{Settings().port}"
    )


def test_postgres_is_the_official_image_with_a_volume_and_a_readiness_check(
    compose_file: Doc,
) -> None:
    service = compose_file["services"]["postgres"]
    assert service["image"].startswith("postgres:")
    assert "build" not in service
    volume, mount_point = service["volumes"][0].split(":")
    assert volume in compose_file["volumes"]
    assert mount_point == POSTGRES_DATA
    assert "ports" not in service, "only the stack reaches the database"
    command = service["healthcheck"]["test"]
    assert command[:2] == ["CMD", "pg_isready"]
    # TCP, not the socket the image's initialisation server listens on.
    assert "--host=127.0.0.1" in command
    assert f"--username={POSTGRES_USER}" in command
    assert f"--dbname={POSTGRES_DB}" in command
    env = service["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (POSTGRES_USER, POSTGRES_DB)
    # What README's erasure promise asks of the server: spent WAL deleted, not recycled.
    assert service["command"] == ["postgres", "-c", "wal_recycle=off"]


@pytest.mark.parametrize("shell", [{}, {"POSTGRES_PASSWORD": "from-the-shell-0123"}])
def test_the_service_logs_in_with_the_password_postgres_is_created_with(
    shell: dict[str, str],
) -> None:
    services = compose(shell)["services"]
    postgres = services["postgres"]["environment"]
    url = urlsplit(services["chat-service"]["environment"]["CHAT_DATABASE_URL"])
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.password == shell.get("POSTGRES_PASSWORD", url.password)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == "/" + postgres["POSTGRES_DB"]
    # The default is a development one, and says so.
    raw = load_yaml(REPO / "docker-compose.yml")["services"]["postgres"]["environment"]
    assert raw["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-dev-only-replace-before-production}"


def test_the_key_comes_from_the_shell_never_from_the_file() -> None:
    raw = load_yaml(REPO / "docker-compose.yml")["services"]["chat-service"]["environment"]
    assert raw["OPENAI_API_KEY"] == "${OPENAI_API_KEY:-}"
    assert not re.search(r"sk-[A-Za-z0-9_-]{8,}", (REPO / "docker-compose.yml").read_text())


def test_a_model_server_on_the_host_is_reachable(compose_file: Doc) -> None:
    assert (
        "host.docker.internal:host-gateway"
        in compose_file["services"]["chat-service"]["extra_hosts"]
    )


def test_nobody_signs_in_unless_the_shell_names_an_issuer(tmp_path: Path) -> None:
    """Unset or empty in the shell, the settings reach both containers empty, which the
    service takes as unset (anonymous, or API keys when it has some) and NGINX's start-up
    script as no issuer: the page's policy without sign-in."""
    raw = load_yaml(REPO / "docker-compose.yml")["services"]
    for name in OIDC_SETTINGS:
        assert raw["chat-service"]["environment"][name] == f"${{{name}:-}}", name
    assert raw["frontend"]["environment"]["CHAT_OIDC_ISSUER"] == "${CHAT_OIDC_ISSUER:-}"
    for shell in ({}, dict.fromkeys(OIDC_SETTINGS, "")):
        services = compose(shell)["services"]
        environment = services["chat-service"]["environment"]
        assert {name: environment[name] for name in OIDC_SETTINGS} == dict.fromkeys(
            OIDC_SETTINGS, ""
        )
        settings = Settings.from_env(environment)
        assert (settings.oidc_issuer, settings.oidc_audience) == (None, None)
        issuer = services["frontend"]["environment"]["CHAT_OIDC_ISSUER"]
        assert issuer == ""
        written = write_oidc_origin(tmp_path, issuer)
        assert written.returncode == 0, written.stderr
        assert read_oidc_origin(tmp_path) == ""


def test_the_shell_turns_on_sign_in_for_the_service_and_the_pages_policy(tmp_path: Path) -> None:
    services = compose(OIDC_SETTINGS)["services"]
    environment = services["chat-service"]["environment"]
    assert {name: environment[name] for name in OIDC_SETTINGS} == OIDC_SETTINGS
    settings = Settings.from_env(environment)
    assert settings.oidc_issuer == OIDC_SETTINGS["CHAT_OIDC_ISSUER"]
    assert settings.oidc_audience == OIDC_SETTINGS["CHAT_OIDC_AUDIENCE"]
    # NGINX gets the same issuer, and the page may connect to its origin.
    issuer = services["frontend"]["environment"]["CHAT_OIDC_ISSUER"]
    assert issuer == settings.oidc_issuer
    written = write_oidc_origin(tmp_path, issuer)
    assert written.returncode == 0, written.stderr
    assert read_oidc_origin(tmp_path) == " https://sso.example.com"
