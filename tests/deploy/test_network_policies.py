"""k8s/ NetworkPolicies: default deny, then exactly the flows the stack needs.

The rendered policies are evaluated the way the API defines them (a connection needs an
egress rule on the source pod AND an ingress rule on the destination pod, unless a side
has no policy of that type) for pods of the stack in the chat-service namespace.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.deploy.stack import Doc, find, pod_spec, workloads

# (source, destination, port): the flows the stack needs.
NEEDED = [
    ("frontend", "chat-service", 8000),
    ("chat-service", "postgres", 5432),
    ("chat-service", "otel-collector", 4318),
    ("otel-collector", "jaeger", 4317),
    ("prometheus", "chat-service", 8000),
    ("prometheus", "otel-collector", 8888),
    ("grafana", "prometheus", 9090),
    ("grafana", "jaeger", 16686),
]
# Flows nothing needs; a sample of what default deny must keep closed.
CLOSED = [
    ("frontend", "otel-collector", 4318),
    ("frontend", "jaeger", 16686),
    ("frontend", "prometheus", 9090),
    ("frontend", "grafana", 3000),
    ("chat-service", "jaeger", 4317),
    ("chat-service", "prometheus", 9090),
    ("chat-service", "grafana", 3000),
    ("otel-collector", "chat-service", 8000),
    ("jaeger", "chat-service", 8000),
    ("jaeger", "otel-collector", 4317),
    ("prometheus", "jaeger", 16686),
    ("grafana", "chat-service", 8000),
    ("postgres", "chat-service", 8000),
    ("postgres", "otel-collector", 4318),
]
# The database's port, and others a client might try on it.
POSTGRES_PORT = 5432
OTHER_PORTS = (5433, 8000, 8008, 9187)


def pod_labels(rendered: list[Doc], name: str) -> dict[str, str]:
    for item in workloads(rendered):
        if item["metadata"]["name"] == name:
            labels: dict[str, str] = item["spec"]["template"]["metadata"]["labels"]
            return labels
    raise AssertionError(f"no workload {name}")


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def peer_matches(peer: Doc, labels: dict[str, str]) -> bool:
    """A same-namespace pod matches a peer given by podSelector only."""
    if "namespaceSelector" in peer or "ipBlock" in peer:
        return False
    return selects(peer["podSelector"], labels)


def port_matches(rule: Doc, port: int) -> bool:
    ports = rule.get("ports")
    return ports is None or any(
        p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports
    )


def allowed(
    rendered: list[Doc], direction: str, pod: dict[str, str], peer: dict[str, str], port: int
) -> bool:
    """Whether the policies selecting ``pod`` let ``direction`` traffic with ``peer`` through."""
    policy_type = direction.capitalize()
    applying = [
        p
        for p in rendered
        if p["kind"] == "NetworkPolicy"
        and policy_type in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], pod)
    ]
    assert applying, "default deny should select every pod"
    peers_key = "from" if direction == "ingress" else "to"

    def rule_allows(rule: Doc) -> bool:
        # A rule without from/to admits every peer; without ports, every port.
        if not port_matches(rule, port):
            return False
        return peers_key not in rule or any(peer_matches(entry, peer) for entry in rule[peers_key])

    return any(rule_allows(rule) for p in applying for rule in p["spec"].get(direction, []))


def connects(rendered: list[Doc], source: str, destination: str, port: int) -> bool:
    src, dst = pod_labels(rendered, source), pod_labels(rendered, destination)
    return allowed(rendered, "egress", src, dst, port) and allowed(
        rendered, "ingress", dst, src, port
    )


def test_default_deny_selects_every_pod_in_both_directions(rendered: list[Doc]) -> None:
    deny = find(rendered, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]


@pytest.mark.parametrize(("source", "destination", "port"), NEEDED)
def test_needed_flow_is_open(rendered: list[Doc], source: str, destination: str, port: int) -> None:
    assert connects(rendered, source, destination, port)


@pytest.mark.parametrize(("source", "destination", "port"), CLOSED)
def test_unneeded_flow_is_closed(
    rendered: list[Doc], source: str, destination: str, port: int
) -> None:
    assert not connects(rendered, source, destination, port)


def test_every_pod_may_resolve_names_with_cluster_dns(rendered: list[Doc]) -> None:
    dns = find(rendered, "NetworkPolicy", "allow-dns")
    assert dns["spec"]["podSelector"] == {}
    (rule,) = dns["spec"]["egress"]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }


def test_only_the_frontend_takes_traffic_from_outside_the_stack(rendered: list[Doc]) -> None:
    outsider: dict[str, str] = {"app.kubernetes.io/name": "someone-else"}
    open_to_all = []
    for item in workloads(rendered):
        labels = pod_labels(rendered, item["metadata"]["name"])
        for entry in pod_spec(item)["containers"][0].get("ports", []):
            if allowed(rendered, "ingress", labels, outsider, entry["containerPort"]):
                open_to_all.append((item["metadata"]["name"], entry["containerPort"]))
    assert open_to_all == [("frontend", 8085)]


def reaches_address(rendered: list[Doc], source: str, address: str, port: int) -> bool:
    """Whether ``source``'s egress policies let it open ``address``:``port`` outside the
    cluster (ipBlock peers: the CIDR minus its exceptions)."""
    labels = pod_labels(rendered, source)
    ip = ipaddress.ip_address(address)
    for policy in rendered:
        if policy["kind"] != "NetworkPolicy" or "Egress" not in policy["spec"]["policyTypes"]:
            continue
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            if not port_matches(rule, port):
                continue
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block is None:
                    continue
                inside = ip in ipaddress.ip_network(block["cidr"])
                excepted = any(ip in ipaddress.ip_network(c) for c in block.get("except", []))
                if inside and not excepted:
                    return True
    return False


# A public address (documentation range) standing for a hosted model API, and private ones.
PUBLIC = "203.0.113.10"


def test_the_service_may_reach_a_model_api_over_https(rendered: list[Doc]) -> None:
    assert reaches_address(rendered, "chat-service", PUBLIC, 443)
    assert not reaches_address(rendered, "chat-service", PUBLIC, 80), "HTTPS only"
    for private in ("10.1.2.3", "172.16.0.5", "192.168.1.1"):
        assert not reaches_address(rendered, "chat-service", private, 443), private


def test_no_other_pod_reaches_outside_the_cluster(rendered: list[Doc]) -> None:
    for name in ("frontend", "postgres", "otel-collector", "jaeger", "prometheus", "grafana"):
        assert not reaches_address(rendered, name, PUBLIC, 443), name


def test_only_chat_service_reaches_postgres_and_only_its_port(rendered: list[Doc]) -> None:
    names = [w["metadata"]["name"] for w in workloads(rendered)]
    assert "postgres" in names
    reaching = [
        name
        for name in names
        if name != "postgres" and connects(rendered, name, "postgres", POSTGRES_PORT)
    ]
    assert reaching == ["chat-service"]
    # And postgres's own policy admits chat-service only, whatever the others' egress says.
    postgres = pod_labels(rendered, "postgres")
    admitted = [
        name
        for name in names
        if allowed(rendered, "ingress", postgres, pod_labels(rendered, name), POSTGRES_PORT)
    ]
    assert admitted == ["chat-service"]
    for port in OTHER_PORTS:
        assert not connects(rendered, "chat-service", "postgres", port), port
    # Nor any pod outside the stack (another namespace's, or one without our labels).
    outsider: dict[str, str] = {"app.kubernetes.io/name": "someone-else"}
    assert not allowed(rendered, "ingress", postgres, outsider, POSTGRES_PORT)


def test_postgres_opens_no_connection(rendered: list[Doc]) -> None:
    """Its egress is DNS only: no rule of a policy selecting it names any peer or port."""
    postgres = pod_labels(rendered, "postgres")
    for name in [w["metadata"]["name"] for w in workloads(rendered)]:
        for port in (443, 4317, 4318, 8000, 8888, POSTGRES_PORT):
            assert not allowed(rendered, "egress", postgres, pod_labels(rendered, name), port)
    assert not reaches_address(rendered, "postgres", "10.1.2.3", POSTGRES_PORT)
