"""Behind an ingress, each client is still a client of its own: two real NGINX hops.

The chain Kubernetes runs, on loopback: clients -> an NGINX standing in for the ingress
controller (:class:`IngressNginx`, connecting from 127.0.0.10) -> NGINX with the project's
template, trusting that address (NGINX_TRUSTED_PROXIES) -> the real chat-service, trusting
only the template's NGINX (CHAT_TRUSTED_PROXIES=127.0.0.1/32). Clients are told apart by
their source addresses (all of 127/8 is loopback): 127.0.0.2, .3, ... each connect from one.
Some come through one more trusted hop first, a load balancer in front of the controller
(connecting from 127.0.0.11).

Without the template's real_ip settings, the service's one trusted hop names the ingress
controller as the client of every request, and one busy client's 429s land on everyone.
The rate limit makes the buckets visible: a burst of 3 and a token per 100 s, so a client
that has made its 3 requests is refused for the rest of the module, whatever the pace.
"""

from __future__ import annotations

import http.client
import itertools
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import StartModuleService
from tests.e2e.nginx import IngressNginx, NginxProcess, NginxServer
from tests.support.service import ServiceProcess

INGRESS_ADDRESS = "127.0.0.10"
BALANCER_ADDRESS = "127.0.0.11"
BURST = 3
EXHAUSTED = [200] * BURST + [429]
LOG_WAIT_S = 5.0

_request_ids = (f"ingress-test-{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service(
        env={
            "CHAT_RATE_LIMIT_RPS": "0.01",
            "CHAT_RATE_LIMIT_BURST": str(BURST),
            "CHAT_TRUSTED_PROXIES": "127.0.0.1/32",
        }
    )


@pytest.fixture(scope="module")
def frontend(
    nginx_binary: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-frontend"),
        service_url=service.base_url,
        trusted_proxies=f"{INGRESS_ADDRESS}/32, {BALANCER_ADDRESS}",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def ingress(
    nginx_binary: str, frontend: NginxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngressNginx]:
    with IngressNginx(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-ingress"),
        upstream_url=frontend.base_url,
        source_address=INGRESS_ADDRESS,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def balancer(
    nginx_binary: str, ingress: IngressNginx, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngressNginx]:
    with IngressNginx(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-balancer"),
        upstream_url=ingress.base_url,
        source_address=BALANCER_ADDRESS,
    ) as server:
        yield server


def history_status(
    server: NginxProcess, client: str, forwarded_for: str | None = None
) -> tuple[int, str]:
    """GET /chat/history from the source address ``client``: the status and the request id
    (to find the request in the frontend's access log)."""
    request_id = next(_request_ids)
    headers = {"X-Request-ID": request_id}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=10, source_address=(client, 0)
    )
    try:
        connection.request("GET", "/chat/history", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, request_id
    finally:
        connection.close()


def logged(frontend: NginxServer, request_id: str) -> tuple[str, str]:
    """Who the template's NGINX logged for one request: the client ($remote_addr, after
    real_ip) and the peer that connected ($realip_remote_addr). NGINX writes the line once
    the response is out, so the client may have it a moment before the log does: wait."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        entries = [e for e in frontend.access_log() if e["request_id"] == request_id]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    (entry,) = entries
    return str(entry["remote_addr"]), str(entry["peer_addr"])


def test_two_clients_behind_the_ingress_have_two_buckets(
    ingress: IngressNginx, frontend: NginxServer
) -> None:
    busy, other = "127.0.0.2", "127.0.0.3"
    answers = [history_status(ingress, busy) for _ in range(BURST + 1)]
    assert [status for status, _ in answers] == EXHAUSTED
    status, request_id = history_status(ingress, other)
    assert status == 200, "the busy client's 429s must not reach another client"
    # NGINX took each client's address from the ingress hop, not the hop's own.
    assert logged(frontend, answers[0][1]) == (busy, INGRESS_ADDRESS)
    assert logged(frontend, request_id) == (other, INGRESS_ADDRESS)


def test_the_client_is_found_past_every_trusted_hop(
    balancer: IngressNginx, ingress: IngressNginx, frontend: NginxServer
) -> None:
    """Load balancer -> ingress -> NGINX: the header ends "client, balancer". NGINX skips
    the balancer's trusted address too (real_ip_recursive); with one hop only, every client
    of the balancer would be the balancer, in one bucket."""
    busy, other = "127.0.0.7", "127.0.0.8"
    answers = [history_status(balancer, busy) for _ in range(BURST + 1)]
    assert [status for status, _ in answers] == EXHAUSTED
    status, request_id = history_status(balancer, other)
    assert status == 200
    assert logged(frontend, answers[0][1]) == (busy, INGRESS_ADDRESS)
    assert logged(frontend, request_id) == (other, INGRESS_ADDRESS)


def test_a_client_cannot_name_itself_through_the_ingress(
    ingress: IngressNginx, frontend: NginxServer
) -> None:
    """The ingress keeps what the client wrote in X-Forwarded-For and appends the client's
    real address. NGINX skips only addresses it trusts, from the right, so it stops at the
    real address: a new made-up address per request, even one followed by the trusted
    proxies' own addresses, buys no new bucket."""
    spoofer, other = "127.0.0.4", "127.0.0.5"
    answers = [
        history_status(ingress, spoofer, forwarded_for=written)
        for written in (
            "198.51.100.1",
            "198.51.100.2",
            f"198.51.100.3, {INGRESS_ADDRESS}",
            f"198.51.100.4, {BALANCER_ADDRESS}",
        )
    ]
    assert [status for status, _ in answers] == EXHAUSTED
    assert {logged(frontend, request_id)[0] for _, request_id in answers} == {spoofer}
    assert history_status(ingress, other)[0] == 200


def test_around_the_ingress_x_forwarded_for_is_not_believed(frontend: NginxServer) -> None:
    """A caller that reaches the template's NGINX directly is not a trusted proxy: what it
    writes in X-Forwarded-For does not change who it is."""
    caller = "127.0.0.6"
    answers = [
        history_status(frontend, caller, forwarded_for=f"198.51.100.{n}") for n in range(BURST + 1)
    ]
    assert [status for status, _ in answers] == EXHAUSTED
    assert {logged(frontend, request_id) for _, request_id in answers} == {(caller, caller)}
