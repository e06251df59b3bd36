"""X-Request-ID on every response (the caller's when acceptable), and no version banner."""

from __future__ import annotations

import re

import pytest

from tests.unit.conftest import MakeClient

MADE_UP = re.compile(r"[0-9a-f]{32}")


async def test_a_callers_id_is_echoed(make_client: MakeClient) -> None:
    client = await make_client()
    for sent in ("req-42", "a" * 200, "0af76519-16cd 43dd:8448/eb21~1c80319c"):
        response = await client.get("/chat/history", headers={"X-Request-ID": sent})
        assert response.headers["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 201, "tab\there", "caf\u00e9", ""],
    ids=["too long", "control character", "not ASCII", "empty"],
)
async def test_an_unacceptable_id_is_replaced(make_client: MakeClient, sent: str) -> None:
    client = await make_client()
    response = await client.get(
        "/chat/history", headers={"X-Request-ID": sent.encode("utf-8").decode("latin-1")}
    )
    assert response.status == 200
    assert MADE_UP.fullmatch(response.headers["X-Request-ID"])


async def test_an_id_is_made_up_for_every_response(make_client: MakeClient) -> None:
    client = await make_client()
    responses = [
        await client.get("/chat/history"),
        await client.get("/chat/history"),
        await client.get("/no/such/route"),
        await client.post("/chat/message", data=b"not json"),
        await client.post(
            "/chat/message", json={"message": "hi"}, headers={"Accept": "text/event-stream"}
        ),
    ]
    assert [r.status for r in responses] == [200, 200, 404, 400, 200]
    ids = [r.headers["X-Request-ID"] for r in responses]
    assert all(MADE_UP.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


async def test_no_version_banner(make_client: MakeClient) -> None:
    client = await make_client()
    for response in (
        await client.get("/healthz"),
        await client.get("/no/such/route"),
        await client.post("/chat/message", json={"message": 1}),
    ):
        assert response.headers.getall("Server") == ["chat-service"]
