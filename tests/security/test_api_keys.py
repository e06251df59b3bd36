"""Optional API keys: Bearer tokens on /chat/*, 401 with a challenge, keys never logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_service.identity.api_keys import ApiKeys
from tests.conftest import StartService

KEY = "s3cret-key-0123456789"
OTHER_KEY = "another-key-9876543210"
UNAUTHORIZED = {"status": "error", "message": "A valid API key is required."}


def test_identify_matches_only_configured_keys() -> None:
    keys = ApiKeys((KEY, OTHER_KEY))
    assert keys.identify(KEY) is not None
    assert keys.identify(KEY) != keys.identify(OTHER_KEY)
    assert keys.identify(KEY[:-1]) is None
    assert keys.identify(KEY + "x") is None
    assert keys.identify("") is None
    assert KEY not in str(keys.identify(KEY))
    assert not ApiKeys(())


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Basic {KEY}", "Bearer ", "Bearer wrong-key-0123456789", f"Bearer {KEY}x"],
)
def test_chat_routes_need_a_valid_key(
    start_service: StartService, authorization: str | None
) -> None:
    service = start_service(env={"CHAT_API_KEYS": KEY})
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in (
        ("GET", "/chat/history", None),
        ("POST", "/chat/message", {"message": "hi"}),
    ):
        status, response_headers, response = service.request(method, path, body, headers)
        assert (status, response) == (401, UNAUTHORIZED)
        # A bearer credential that is no key is an invalid token (RFC 6750, section 3).
        token = (authorization or "").removeprefix("Bearer ")
        presented = token != (authorization or "") and bool(token.strip())
        assert response_headers["WWW-Authenticate"] == (
            'Bearer realm="chat-service", error="invalid_token"'
            if presented
            else 'Bearer realm="chat-service"'
        )
    service.stop()
    assert KEY not in service.stdout()
    assert "wrong-key" not in service.stdout()


def test_a_valid_key_is_accepted_and_probes_stay_open(
    start_service: StartService, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# one key per line\n{OTHER_KEY}\n")
    service = start_service(env={"CHAT_API_KEYS": KEY, "CHAT_API_KEYS_FILE": str(keys_file)})
    for key in (KEY, OTHER_KEY):
        status, _, body = service.request(
            "POST", "/chat/message", {"message": "hi"}, {"Authorization": f"Bearer {key}"}
        )
        assert (status, body["status"]) == (200, "Success")
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        assert service.request("GET", path)[0] == 200, path
    service.stop()
    assert KEY not in service.stdout()
    assert OTHER_KEY not in service.stdout()


def test_metrics_can_require_a_key(start_service: StartService) -> None:
    service = start_service(env={"CHAT_API_KEYS": KEY, "CHAT_METRICS_REQUIRE_KEY": "true"})
    assert service.request("GET", "/metrics")[0] == 401
    status, _, text = service.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200
    assert "http_server_request_duration_seconds" in text
