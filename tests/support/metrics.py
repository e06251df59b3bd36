"""Reading the service's /metrics in tests."""

from __future__ import annotations

from prometheus_client import parser
from prometheus_client.openmetrics import parser as openmetrics_parser

from tests.support.service import ServiceProcess


def samples(text: str, name: str) -> list[dict[str, str]]:
    """Every sample called ``name`` (text or OpenMetrics format): its labels and ``value``."""
    is_openmetrics = text.rstrip().endswith("# EOF")
    families = (
        openmetrics_parser.text_string_to_metric_families(text)
        if is_openmetrics
        else parser.text_string_to_metric_families(text)
    )
    return [
        dict(sample.labels) | {"value": str(sample.value)}
        for family in families
        for sample in family.samples
        if sample.name == name
    ]


def value(service: ServiceProcess, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly these labels, or None."""
    _, _, text = service.request("GET", "/metrics")
    for sample in samples(text, name):
        found = {k: v for k, v in sample.items() if k != "value"}
        if found == labels:
            return float(sample["value"])
    return None
