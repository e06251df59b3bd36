"""The service with a real model API: ``CHAT_ASSISTANT=openai`` against the OpenAI-compatible
model server process of tests/support, over real HTTP both ways."""

from __future__ import annotations

import json
import threading
import time
from itertools import accumulate
from typing import Any

import pytest

from tests.conftest import StartService
from tests.integration.test_tracing import by_name, exporting_to
from tests.support import metrics
from tests.support.model import ModelServer
from tests.support.otlp import OtlpHttpReceiver
from tests.support.service import ServiceProcess
from tests.support.sse import post_stream

KEY = "sk-test-key-not-secret"
ERROR = {"status": "error", "message": "The assistant failed to reply."}


def failed(message: str) -> dict[str, str]:
    return {"status": "error", "message": message}


REFUSED_KEY = failed("The model server refused the service's API key.")
TIMED_OUT = failed("The model did not answer in time.")
STOPPED = failed("The model stopped in the middle of its reply.")
GENAI_LABELS = {
    "gen_ai_operation_name": "chat",
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-test",
}


def stored(service: ServiceProcess, conversation: str = "default") -> list[dict[str, Any]]:
    """The conversation's history items, whole."""
    status, _, body = service.request("GET", f"/chat/history?conversation_id={conversation}")
    assert status == 200
    items: list[dict[str, Any]] = body
    return items


def history(service: ServiceProcess, conversation: str = "default") -> list[dict[str, str]]:
    """The conversation's texts: each exchange's message and reply."""
    return [{"user": item["user"], "AI": item["AI"]} for item in stored(service, conversation)]


def log_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.stdout().splitlines()]


def wait_for(condition: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return result


def test_the_conversation_goes_to_the_model_as_context(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env(CHAT_SYSTEM_PROMPT="Be brief."))
    first = service.request("POST", "/chat/message", {"message": "hello"})
    second = service.request("POST", "/chat/message", {"message": "and again"})
    assert first[::2] == (200, {"status": "Success", "response": "Reply 1: hello"})
    assert second[::2] == (200, {"status": "Success", "response": "Reply 2: and again"})
    assert history(service) == [
        {"user": "hello", "AI": "Reply 1: hello"},
        {"user": "and again", "AI": "Reply 2: and again"},
    ]
    request = model_server.requests()[1]
    assert request["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Reply 1: hello"},
        {"role": "user", "content": "and again"},
    ]
    assert request["body"]["model"] == "gpt-test"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"


def test_a_streamed_reply_relays_the_models_chunks(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env())
    chunks = ["The ", "answer ", "is ", "42."]
    model_server.script({"chunks": chunks, "chunk_delay_s": 0.2, "model": "gpt-test-0613"})
    stream = post_stream(service.port, {"message": "question"})
    *deltas, done = list(stream.events())
    assert {e.event for e in deltas} == {"delta"}
    texts = [e.data["text"] for e in deltas]
    assert "".join(texts) == "The answer is 42."
    # As they come: each delta is whole chunks, in order (chunks that reach the service in
    # one read, on a busy machine, go on as one delta), and not all of them at the end.
    assert set(accumulate(map(len, texts))) <= set(accumulate(map(len, chunks)))
    assert len(deltas) >= 2
    assert (done.event, done.data) == (
        "done",
        {"status": "Success", "response": "The answer is 42."},
    )
    assert history(service) == [{"user": "question", "AI": "The answer is 42."}]
    # Stored with the model the server says it ran and the usage its last chunk reported.
    ((model, usage),) = [(item["model"], item["usage"]) for item in stored(service)]
    assert model == "gpt-test-0613"
    assert usage == {"input_tokens": 1, "output_tokens": 4}


def test_stop_closes_the_model_request_within_a_second_and_keeps_what_was_sent(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env())
    words = [f"w{n} " for n in range(40)]
    model_server.script({"chunks": words, "chunk_delay_s": 0.25})
    stream = post_stream(service.port, {"message": "a long story"})
    received = []
    for event in stream.events():
        received.append(event.data["text"])
        if len(received) == 2:
            break
    stopped_at = time.time()
    stream.close()

    record = wait_for(
        lambda: model_server.requests()[0]["disconnected_at"] and model_server.requests()[0]
    )
    assert record["disconnected_at"] - stopped_at < 1.0, "the model server saw the client go"
    assert record["completed"] is False
    assert record["chunks_sent"] < len(words)
    wait_for(lambda: history(service))
    assert history(service) == [{"user": "a long story", "AI": "w0 w1 "}]
    assert received == ["w0 ", "w1 "]


def test_a_429_is_retried_after_its_retry_after(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env())
    model_server.script({"status": 429, "retry_after": 0.5})
    status, _, body = service.request("POST", "/chat/message", {"message": "hi"})
    assert (status, body["response"]) == (200, "Reply 1: hi")
    first, second = model_server.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["received_at"] - first["received_at"] >= 0.45
    retries = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-test"}
    assert metrics.value(service, "chat_model_retries_total", **retries) == 1


def test_a_model_that_keeps_failing_is_a_500_logged_once_without_secrets(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env(CHAT_MODEL_MAX_RETRIES="1"))
    model_server.default(status=500, error_message="overloaded; your key {api_key} is fine")
    status, _, body = service.request("POST", "/chat/message", {"message": "my private words"})
    assert (status, body) == (500, ERROR)
    assert len(model_server.requests()) == 2, "one try, one retry"
    assert history(service) == []
    failures = [line for line in log_lines(service) if line["level"] == "ERROR"]
    assert len(failures) == 1
    assert failures[0]["error_type"] == "InternalServerError"
    assert "exc_info" not in failures[0]
    output = service.stdout() + service.stderr()
    assert KEY not in output
    assert "private" not in output
    assert "overloaded" not in output, "the model server's error body is not logged"
    count = "gen_ai_client_operation_duration_seconds_count"
    assert metrics.value(service, count, **GENAI_LABELS, error_type="InternalServerError") == 1


def test_a_rejected_key_is_never_logged(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env(CHAT_LOG_LEVEL="DEBUG"))
    model_server.default(status=401, error_message="Incorrect API key provided: {api_key}")
    status, _, body = service.request("POST", "/chat/message", {"message": "hi"})
    assert (status, body) == (500, REFUSED_KEY)
    assert KEY not in service.stdout() + service.stderr()
    [failure] = [line for line in log_lines(service) if line["level"] == "ERROR"]
    assert failure["error_type"] == "AuthenticationError"


@pytest.fixture
def impatient(start_service: StartService, model_server: ModelServer) -> ServiceProcess:
    """A service that waits at most 1 s for the model, and does not retry."""
    return start_service(
        env=model_server.openai_env(CHAT_MODEL_TIMEOUT_S="1", CHAT_MODEL_MAX_RETRIES="0")
    )


def test_a_model_that_does_not_answer_times_out(
    impatient: ServiceProcess, model_server: ModelServer
) -> None:
    service = impatient
    model_server.default(hang=True)
    started = time.monotonic()
    stream = post_stream(service.port, {"message": "hi"})
    assert stream.status == 500, "nothing was streamed yet: a plain JSON error"
    assert stream.body() == TIMED_OUT
    assert time.monotonic() - started < 3
    assert history(service) == []
    [failure] = [line for line in log_lines(service) if line["level"] == "ERROR"]
    assert failure["error_type"] == "TimeoutError"


def test_a_model_that_fails_mid_stream_ends_it_with_an_error_event(
    impatient: ServiceProcess, model_server: ModelServer
) -> None:
    service = impatient
    model_server.script({"chunks": ["one ", "two ", "three"], "hang_after_chunks": 2})
    *deltas, last = list(post_stream(service.port, {"message": "count"}).events())
    # The two pieces sent, as one delta or two (pieces that arrive together go as one).
    assert {e.event for e in deltas} == {"delta"}
    assert "".join(e.data["text"] for e in deltas) == "one two "
    assert (last.event, last.data) == ("error", STOPPED)
    assert history(service) == [], "an error means nothing stored"


def test_calls_beyond_the_concurrency_limit_wait_then_get_503(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(
        env=model_server.openai_env(CHAT_MODEL_MAX_CONCURRENCY="1", CHAT_MODEL_TIMEOUT_S="1")
    )
    # One slow but steady reply (no read waits a whole second) holds the only slot ~3 s.
    model_server.script({"chunks": [f"w{n} " for n in range(12)], "chunk_delay_s": 0.25})
    first = post_stream(service.port, {"message": "slow", "conversation_id": "a"})
    assert first.status == 200
    started = time.monotonic()
    status, headers, body = service.request(
        "POST", "/chat/message", {"message": "me too", "conversation_id": "b"}
    )
    waited = time.monotonic() - started
    assert (status, headers["Retry-After"]) == (503, "2")
    assert body == {"status": "error", "message": "The assistant is busy; try again in a moment."}
    assert 0.9 <= waited < 2.5, "it waited for a slot, for the timeout"
    assert [e.event for e in first.events()][-1] == "done"
    assert (
        service.request("POST", "/chat/message", {"message": "now", "conversation_id": "b"})[0]
        == 200
    )
    assert history(service, "b") == [{"user": "now", "AI": "Reply 1: now"}]


def test_a_cached_reply_does_not_call_the_model(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env(CHAT_REPLY_CACHE_TTL_S="60"))
    for conversation in ("a", "b"):
        body = {"message": "what is SSE?", "conversation_id": conversation}
        assert service.request("POST", "/chat/message", body)[2]["response"] == (
            "Reply 1: what is SSE?"
        )
    assert len(model_server.requests()) == 1
    assert history(service, "b") == [{"user": "what is SSE?", "AI": "Reply 1: what is SSE?"}]
    assert metrics.value(service, "chat_reply_cache_requests_total", result="hit") == 1
    assert metrics.value(service, "chat_reply_cache_requests_total", result="miss") == 1


def test_one_conversation_is_answered_one_message_at_a_time(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env())
    model_server.default(chunk_delay_s=0.05)
    replies: dict[int, str] = {}

    def send(number: int) -> None:
        body = {"message": f"m{number}", "conversation_id": "c"}
        replies[number] = service.request("POST", "/chat/message", body)[2]["response"]

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(30)
    # Each reply saw every earlier exchange: the model counts the user messages it got.
    assert replies == {n: f"Reply {n + 1}: m{n}" for n in range(4)}
    contexts = [len(r["body"]["messages"]) for r in model_server.requests()]
    assert contexts == [1, 3, 5, 7]


def test_streaming_metrics(start_service: StartService, model_server: ModelServer) -> None:
    service = start_service(env=model_server.openai_env())
    model_server.script({"chunks": ["a ", "b ", "c ", "d"], "chunk_delay_s": 0.02})
    events = list(post_stream(service.port, {"message": "one two"}).events())
    deltas = [event.data["text"] for event in events if event.event == "delta"]
    assert "".join(deltas) == "a b c d"
    assert events[-1].event == "done"
    ttfc = "gen_ai_client_operation_time_to_first_chunk_seconds_count"
    per_chunk = "gen_ai_client_operation_time_per_output_chunk_seconds_count"
    assert metrics.value(service, ttfc, **GENAI_LABELS) == 1
    # One observation per piece after the first. Chunks that arrive in one read are relayed
    # as one piece (a loaded machine can hold one back 20 ms): as many as the deltas sent.
    assert metrics.value(service, per_chunk, **GENAI_LABELS) == len(deltas) - 1
    tokens = "gen_ai_client_token_usage_sum"
    # The model server's own usage: 2 words of prompt, 4 chunks.
    assert metrics.value(service, tokens, **GENAI_LABELS, gen_ai_token_type="input") == 2
    assert metrics.value(service, tokens, **GENAI_LABELS, gen_ai_token_type="output") == 4
    assert metrics.value(service, "chat_streams_open") == 0


def test_one_genai_span_per_call_and_the_model_joins_the_trace(
    start_service: StartService, model_server: ModelServer
) -> None:
    model_server.script({"model": "gpt-test-2026-01-01", "chunks": ["Hi ", "there."]})
    with OtlpHttpReceiver() as receiver:
        service = start_service(
            env={**model_server.openai_env(), **exporting_to(receiver.endpoint)}
        )
        status, headers, _ = service.request(
            "POST", "/chat/message", {"message": "hello", "conversation_id": "span-test"}
        )
        assert status == 200
        spans = receiver.wait_for(lambda s: any(x.name == "INSERT exchanges" for x in s))
    server = by_name(spans, "POST /chat/message")
    genai_spans = [s for s in spans if s.name.startswith("chat ")]
    assert [s.name for s in genai_spans] == ["chat gpt-test"], "exactly one GenAI span"
    [genai] = genai_spans
    assert genai.kind == "SPAN_KIND_CLIENT"
    assert (genai.trace_id, genai.parent_span_id) == (server.trace_id, server.span_id)
    attributes = genai.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "gpt-test-2026-01-01"
    assert attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        1,
        2,
    )
    assert attributes["gen_ai.request.stream"] is True
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < 5
    assert attributes["gen_ai.conversation.id"] == "span-test"
    assert (attributes["server.address"], attributes["server.port"]) == (
        "127.0.0.1",
        model_server.port,
    )
    assert not any(key.endswith(".messages") for key in attributes), "content is opt-in"
    # The request to the model carried the GenAI span as its parent.
    traceparent = model_server.requests()[0]["headers"]["traceparent"]
    assert traceparent.split("-")[1:3] == [genai.trace_id, genai.span_id]
    assert headers["traceresponse"].split("-")[1] == genai.trace_id


def test_idle_streams_get_a_keepalive_comment(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(
        env=model_server.openai_env(CHAT_MODEL_TIMEOUT_S="30", CHAT_STREAM_KEEPALIVE_S="0.5")
    )
    # A model that thinks for 1.5 s after its first word: three keep-alive intervals.
    model_server.script({"chunks": ["first ", "second"], "chunk_delays": [0, 1.5]})
    stream = post_stream(service.port, {"message": "slow"})
    events = list(stream.events())
    assert [e.event for e in events] == ["delta", "delta", "done"]
    assert "ping" in stream.comments, "a comment line kept the idle stream open"


def test_the_models_offered_are_the_model_servers(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env())
    status, _, body = service.request("GET", "/chat/models")
    assert (status, body) == (
        200,
        {"default": "gpt-test", "models": [{"id": "gpt-test"}, {"id": "gpt-test-mini"}]},
    )
    listed = start_service(env=model_server.openai_env(CHAT_MODELS="big-one, gpt-test"))
    assert listed.request("GET", "/chat/models")[2] == {
        "default": "gpt-test",
        "models": [{"id": "gpt-test"}, {"id": "big-one"}],
    }


def test_a_conversations_model_and_instructions_reach_the_model_server(
    start_service: StartService, model_server: ModelServer
) -> None:
    service = start_service(env=model_server.openai_env(CHAT_SYSTEM_PROMPT="Be brief."))
    status, _, created = service.request(
        "POST",
        "/chat/conversations",
        {"model": "gpt-test-mini", "system_prompt": "Answer in French."},
    )
    assert status == 201
    service.request("POST", "/chat/message", {"message": "hello", "conversation_id": created["id"]})
    service.request(
        "POST",
        "/chat/message",
        {"message": "again", "conversation_id": created["id"], "model": "gpt-test"},
    )
    first, second = (r["body"] for r in model_server.requests())
    assert (first["model"], first["messages"][0]) == (
        "gpt-test-mini",
        {"role": "system", "content": "Answer in French."},
    )
    assert (second["model"], second["messages"][0]["content"]) == ("gpt-test", "Answer in French.")
    assert [item["model"] for item in stored(service, created["id"])] == [
        "gpt-test-mini",
        "gpt-test",
    ]
    refused = service.request("POST", "/chat/message", {"message": "x", "model": "gpt-5"})
    assert refused[0] == 400
    assert len(model_server.requests()) == 2, "a model not offered never reaches the server"
