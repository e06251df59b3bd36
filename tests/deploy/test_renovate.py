""".github/renovate.json: valid per Renovate's schema (check-jsonschema's copy, offline), and
pointed at the files this repository pins versions in."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from tests.deploy.stack import REPO, compose, load_yaml, run, venv_tool

CONFIG = REPO / ".github" / "renovate.json"
OWN_IMAGES = {"chat-service", "chat-service-frontend"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONFIG.read_text())
    return loaded


def patterns(config: dict[str, Any], manager: str) -> list[re.Pattern[str]]:
    """A manager's managerFilePatterns: JavaScript regular expressions written /like this/."""
    written = config[manager]["managerFilePatterns"]
    assert written
    for pattern in written:
        assert pattern.startswith("/"), pattern
        assert pattern.endswith("/"), pattern
    return [re.compile(p[1:-1]) for p in written]


def matched(config: dict[str, Any], manager: str, path: str) -> bool:
    return any(p.search(path) for p in patterns(config, manager))


def test_validates_against_the_renovate_schema() -> None:
    tool = venv_tool("check-jsonschema", package="PyPI check-jsonschema")
    result = run(tool, "--builtin-schema", "vendor.renovate", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_option_is_one_renovate_knows(config: dict[str, Any]) -> None:
    # The schema lets unknown keys through: a misspelt manager would be ignored silently.
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/renovate.json"
    schema = json.loads(schema_file.read_text())
    known = schema["properties"]
    assert set(config) - {"$schema"} <= set(known)
    for key, value in config.items():
        if isinstance(value, dict):
            options = schema["definitions"][key].get("allOf", [{}])[0].get("properties", known)
            assert set(value) <= set(options), value
    rule_options = schema["definitions"]["packageRules"]["items"]["allOf"][0]["properties"]
    for rule in config["packageRules"]:
        assert set(rule) <= set(rule_options), rule
        assert rule["description"]


def test_the_lock_files_are_updated_with_their_sources(config: dict[str, Any]) -> None:
    locks = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "requirements").glob("*.txt"))
    assert locks
    for lock in locks:
        assert matched(config, "pip-compile", lock), lock
    assert not matched(config, "pip-compile", "requirements/build.in")
    # pyproject.toml and the .in files are the lock files' sources: their own managers would
    # change them without the lock.
    assert config["pep621"]["enabled"] is False
    assert config["pip_requirements"]["enabled"] is False
    assert config["lockFileMaintenance"]["enabled"] is True


def test_every_kubernetes_manifest_with_an_image_is_read(config: dict[str, Any]) -> None:
    manifests = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "k8s").rglob("*.yaml")
        if re.search(r"^\s+image:", p.read_text(), re.MULTILINE)
    ]
    assert len(manifests) >= 5
    for manifest in manifests:
        assert matched(config, "kubernetes", manifest), manifest
    assert not matched(config, "kubernetes", "docker-compose.yml")


def test_only_our_own_images_are_left_alone(config: dict[str, Any]) -> None:
    disabled = {
        name
        for rule in config["packageRules"]
        if rule.get("enabled") is False and "matchUpdateTypes" not in rule
        for name in rule.get("matchDepNames", [])
    }
    assert disabled == OWN_IMAGES
    images = {service["image"].split(":")[0] for service in compose()["services"].values()}
    assert images >= OWN_IMAGES
    kustomized = {i["name"] for i in load_yaml(REPO / "k8s/base/kustomization.yaml")["images"]}
    assert kustomized == OWN_IMAGES
