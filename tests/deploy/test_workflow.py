""".github/workflows/ci.yml: valid per the workflow schema; tests, then both images."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.stack import REPO, Doc, dockerfile, load_yaml, run, venv_tool

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> Doc:
    doc: Doc = load_yaml(WORKFLOW)
    return doc


def steps_using(job: Doc, action: str) -> list[Doc]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def test_validates_against_the_github_workflow_schema() -> None:
    tool = venv_tool("check-jsonschema", package="PyPI check-jsonschema")
    result = run(tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_on_pushes_pull_requests_and_release_tags(workflow: Doc) -> None:
    # PyYAML reads the bare key `on` as True.
    keys: dict[Any, Any] = workflow
    triggers: Doc = keys["on"] if "on" in keys else keys[True]
    assert "pull_request" in triggers
    assert triggers["push"]["tags"] == ["v*"]
    assert workflow["permissions"] == {"contents": "read"}


def test_actions_are_pinned_to_a_major_version(workflow: Doc) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for use in uses:
        assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", use), use


def test_the_test_job_runs_ci_run_on_python_3_12_with_ci_set(workflow: Doc) -> None:
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    (setup,) = steps_using(job, "actions/setup-python")
    assert setup["with"]["python-version"] == "3.12"
    commands = [s["run"] for s in job["steps"] if "run" in s]
    assert any("bash .ci/run" in c and "CI=true" in c and c.startswith("sudo") for c in commands)


def test_the_images_job_builds_every_dockerfile_target_and_pushes_only_tags(workflow: Doc) -> None:
    job = workflow["jobs"]["images"]
    assert job["needs"] == "test"
    targets = {entry["target"] for entry in job["strategy"]["matrix"]["include"]}
    assert targets == {"service", "frontend"}
    assert targets <= {i.stage for i in dockerfile()}
    (build,) = steps_using(job, "docker/build-push-action")
    assert build["with"]["target"] == "${{ matrix.target }}"
    assert build["with"]["push"] == "${{ env.PUSH == 'true' }}"
    assert "startsWith(github.ref, 'refs/tags/v')" in job["env"]["PUSH"]
    assert "github.event_name == 'push'" in job["env"]["PUSH"]
    (login,) = steps_using(job, "docker/login-action")
    assert login["if"] == "env.PUSH == 'true'"
    assert job["permissions"]["packages"] == "write"
