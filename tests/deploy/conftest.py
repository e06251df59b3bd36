"""Fixtures for the deployment tests: the rendered Kubernetes manifests and the compose file."""

from __future__ import annotations

import pytest

from tests.deploy.stack import (
    BASE,
    OPERATOR_OVERLAY,
    SQLITE_OVERLAY,
    Doc,
    compose,
    rendered_build,
)


@pytest.fixture(scope="session")
def rendered() -> list[Doc]:
    """``kubectl kustomize k8s/``, parsed: what ``kubectl apply -k k8s/`` would send."""
    return list(rendered_build(BASE))


@pytest.fixture(scope="session")
def sqlite_rendered() -> list[Doc]:
    """The single-pod SQLite overlay, rendered."""
    return list(rendered_build(SQLITE_OVERLAY))


@pytest.fixture(scope="session")
def operator_rendered() -> list[Doc]:
    """The overlay for clusters with their own Prometheus Operator and collector, rendered."""
    return list(rendered_build(OPERATOR_OVERLAY))


@pytest.fixture(scope="session")
def compose_file() -> Doc:
    return compose()
