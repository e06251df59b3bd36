"""Fixtures for the deployment tests: the rendered Kubernetes manifests and the compose file."""

from __future__ import annotations

import pytest

from tests.deploy.stack import Doc, compose, render_kustomize


@pytest.fixture(scope="session")
def rendered() -> list[Doc]:
    """``kubectl kustomize k8s/``, parsed: what ``kubectl apply -k k8s/`` would send."""
    return render_kustomize()


@pytest.fixture(scope="session")
def compose_file() -> Doc:
    return compose()
