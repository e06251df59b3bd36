"""With API keys on the service, the page still works through NGINX, which adds the key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.chat_page import USER, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import NginxServer
from tests.support.service import ServiceProcess

KEY = "nginx-upstream-key-0123456789"


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service(env={"CHAT_API_KEYS": KEY})


@pytest.fixture(scope="module")
def nginx(
    nginx_binary: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    server = NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-keys"),
        service_url=service.base_url,
        upstream_api_key=KEY,
    )
    server.write_config()
    result = server.check_config()
    assert result.returncode == 0, result.stderr
    with server:
        yield server


def test_the_service_refuses_callers_without_the_key(service: ServiceProcess) -> None:
    assert service.request("GET", "/chat/history")[0] == 401


def test_the_page_works_through_nginx(open_page: OpenPage, nginx: NginxServer) -> None:
    chat = ChatPage(open_page(), nginx.base_url)
    chat.open()
    reply = chat.send("Hello through the keyed proxy")
    assert reply.startswith("Hello")
    chat.page.reload()
    expect(chat.page.locator(USER)).to_have_count(1)
    assert chat.user_texts() == ["Hello through the keyed proxy"]
    assert chat.ai_texts() == [reply]


def test_without_the_include_nginx_sends_no_key(
    nginx_binary: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import urllib.error
    import urllib.request

    with (
        NginxServer(
            binary=nginx_binary,
            workdir=tmp_path_factory.mktemp("nginx-nokey"),
            service_url=service.base_url,
        ) as server,
        pytest.raises(urllib.error.HTTPError) as error,
    ):
        urllib.request.urlopen(f"{server.base_url}/chat/history", timeout=10)
    assert error.value.code == 401
