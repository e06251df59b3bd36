"""The OpenAI-compatible assistant against a real OpenAI-compatible server process
(tests/support/model_server.py): its requests (model_client.py) and the reading of the
streamed reply, and the listing of the models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import accumulate

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from chat_service.assistant import AssistantError, Completion, ReplyChunk, create_assistant
from chat_service.assistant.openai import OpenAIAssistant, output_limit_parameter
from chat_service.chat.domain import Exchange
from chat_service.config import Settings
from tests.support.model import ModelServer
from tests.support.model_server import OFFERED
from tests.support.refs import ref
from tests.support.service import free_port

HISTORY = [
    Exchange(
        id=n,
        conversation=ref("c"),
        turn=n,
        user=f"{word} question",
        ai=f"{word} answer",
        created_at="",
    )
    for n, word in ((1, "first"), (2, "second"))
]


@pytest.fixture
async def assistant(model_server: ModelServer) -> AsyncIterator[OpenAIAssistant]:
    made = OpenAIAssistant(
        model="gpt-test",
        api_key="sk-unit-test",
        base_url=model_server.base_url,
        system_prompt="Be brief.",
        timeout_s=2,
        max_retries=1,
    )
    yield made
    await made.close()


async def collect(chunks: AsyncIterator[ReplyChunk]) -> tuple[list[str], Completion]:
    items = [chunk async for chunk in chunks]
    *pieces, completion = items
    assert isinstance(completion, Completion)
    return [str(piece) for piece in pieces], completion


async def test_sends_the_system_prompt_the_context_and_the_message(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    await collect(assistant.stream("third question", HISTORY))
    [request] = model_server.requests()
    body = request["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "third question"},
    ]
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "max_tokens" not in body
    assert "max_completion_tokens" not in body
    assert request["headers"]["authorization"] == "Bearer sk-unit-test"


async def test_streams_the_pieces_and_ends_with_the_models_usage(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    chunks = ["Hel", "lo ", "world"]
    model_server.script({"chunks": chunks, "model": "gpt-test-2026-01-01", "chunk_delay_s": 0.2})
    pieces, completion = await collect(assistant.stream("hi", []))
    assert "".join(pieces) == "Hello world"
    # As they come: whole chunks, in order (two that arrive in one read are one piece), and
    # not all at the end.
    assert set(accumulate(map(len, pieces))) <= set(accumulate(map(len, chunks)))
    assert len(pieces) >= 2
    [request] = model_server.requests()
    assert completion.model == "gpt-test-2026-01-01"
    assert completion.finish_reason == "stop"
    # The server's usage: 1 word of prompt plus the system prompt's 2; one token per chunk.
    assert (completion.input_tokens, completion.output_tokens) == (3, 3)
    assert completion.response_id is not None
    assert completion.response_id.startswith("chatcmpl-")
    assert request["completed"] is True


async def test_pieces_that_arrive_together_are_given_as_one(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    """Chunks the server sent at once come in one read, and are one piece: one step of the
    relay, one event to the client."""
    model_server.script({"chunks": [f"{n} " for n in range(50)]})
    pieces, completion = await collect(assistant.stream("hi", []))
    assert "".join(pieces) == "".join(f"{n} " for n in range(50))
    assert len(pieces) < 50
    assert completion.output_tokens == 50


async def test_the_finish_reason_is_the_models(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.script({"reply": "cut short", "finish_reason": "length"})
    _, completion = await collect(assistant.stream("hi", []))
    assert completion.finish_reason == "length"


async def test_a_stream_without_finish_reason_or_usage_ends_as_stopped_and_uncounted(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    """Servers that send neither (some compatible ones): the reply is complete, its finish
    reason ``stop``, its token counts unknown (None, not zero or empty)."""
    model_server.script({"reply": "all of it", "finish_reason": None, "usage": False})
    pieces, completion = await collect(assistant.stream("hi", []))
    assert "".join(pieces) == "all of it"
    assert completion.finish_reason == "stop"
    assert (completion.input_tokens, completion.output_tokens) == (None, None)


@pytest.mark.parametrize(
    ("usage", "counts"),
    [({"completion_tokens": 3}, (None, 3)), ({"prompt_tokens": 7}, (7, None))],
)
async def test_a_usage_with_one_count_keeps_it(
    assistant: OpenAIAssistant,
    model_server: ModelServer,
    usage: dict[str, int],
    counts: tuple[int | None, int | None],
) -> None:
    """A server that counts only some of the tokens: what it counted is kept, the rest
    unknown."""
    model_server.script({"reply": "one two three", "usage": usage})
    _, completion = await collect(assistant.stream("hi", []))
    assert (completion.input_tokens, completion.output_tokens) == counts


@pytest.mark.parametrize(
    "chunk_delay_s",
    [
        0.1,
        # No pause between the pieces and the error: the client usually reads them in one
        # block, and the pieces still come before the failure.
        0.0,
    ],
)
async def test_an_error_object_mid_stream_fails_the_reply_with_what_was_sent_before(
    assistant: OpenAIAssistant, model_server: ModelServer, chunk_delay_s: float
) -> None:
    model_server.script(
        {
            "chunks": ["one ", "two ", "three"],
            "error_after_chunks": 2,
            "chunk_delay_s": chunk_delay_s,
        }
    )
    received: list[str] = []

    async def read() -> None:
        async for piece in assistant.stream("hi", []):
            received.append(str(piece))

    with pytest.raises(AssistantError) as failure:
        await read()
    assert "".join(received) == "one two "
    assert failure.value.error_type == "APIError"
    assert str(failure.value) == "the model reported an error mid-stream"


async def test_without_a_system_prompt_the_conversation_comes_first(
    model_server: ModelServer,
) -> None:
    assistant = OpenAIAssistant(model="m", api_key="k", base_url=model_server.base_url)
    await collect(assistant.stream("hi", []))
    await assistant.close()
    assert model_server.requests()[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]


async def test_the_output_limit_is_sent(model_server: ModelServer) -> None:
    assistant = OpenAIAssistant(
        model="m", api_key="k", base_url=model_server.base_url, max_output_tokens=64
    )
    await collect(assistant.stream("hi", []))
    await assistant.close()
    body = model_server.requests()[0]["body"]
    assert body["max_tokens"] == 64, "a compatible server gets the parameter they all know"
    assert "max_completion_tokens" not in body


@pytest.mark.parametrize(
    ("host", "parameter"),
    [
        ("api.openai.com", "max_completion_tokens"),
        ("localhost", "max_tokens"),
        ("api.openai.com.example", "max_tokens"),
    ],
)
def test_openai_itself_gets_the_current_output_limit_parameter(host: str, parameter: str) -> None:
    assert output_limit_parameter(host) == parameter


async def test_a_429_is_retried_and_counted(model_server: ModelServer) -> None:
    retries: list[float] = []
    assistant = OpenAIAssistant(
        model="m",
        api_key="k",
        base_url=model_server.base_url,
        max_retries=2,
        on_retry=lambda: retries.append(time.monotonic()),
    )
    model_server.script({"status": 429, "retry_after": 0.3})
    started = time.monotonic()
    pieces, _ = await collect(assistant.stream("hi", []))
    await assistant.close()
    assert "".join(pieces) == "Reply 1: hi"
    first, second = model_server.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert len(retries) == 1
    assert second["received_at"] - first["received_at"] >= 0.25, "Retry-After is honoured"
    assert time.monotonic() - started < 2


async def test_a_server_that_keeps_failing_raises_with_its_type(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.default(status=500, error_message="upstream broke while reading {api_key}")
    with pytest.raises(AssistantError) as failure:
        await collect(assistant.stream("my private words", []))
    assert failure.value.error_type == "InternalServerError"
    assert len(model_server.requests()) == 2, "the first try and max_retries=1 retry"
    assert "sk-unit-test" not in str(failure.value)
    assert "private" not in str(failure.value)
    assert str(failure.value) == "the model call failed (HTTP 500)"


async def test_a_model_that_never_answers_times_out(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.default(hang=True)
    started = time.monotonic()
    with pytest.raises(AssistantError) as failure:
        await collect(assistant.stream("hi", []))
    elapsed = time.monotonic() - started
    # The whole wait is bounded by the timeout (2 s), retries included.
    assert 1.9 <= elapsed < 3, elapsed
    assert failure.value.error_type == "TimeoutError"
    assert str(failure.value) == "no answer from the model within 2 s"


async def test_a_stall_mid_reply_fails_after_the_pieces_already_given(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.script({"hang_after_chunks": 2})
    stream = assistant.stream("one two three", [])
    given = ""
    while given != "Reply 1: ":  # the two pieces, in one read or two
        given += str(await anext(stream))
        assert "Reply 1: ".startswith(given), given
    with pytest.raises(AssistantError) as failure:
        await anext(stream)
    assert failure.value.error_type == "APITimeoutError"
    assert str(failure.value) == "the model call failed (no HTTP answer)"


async def test_closing_the_stream_closes_the_request_to_the_model(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.script({"chunk_delay_s": 0.2, "reply": "a b c d e f g h i j"})
    stream = assistant.stream("hi", [])
    assert await anext(stream) == "a "
    closed = time.time()
    await stream.aclose()
    deadline = time.monotonic() + 2
    while (record := model_server.requests()[0])["disconnected_at"] is None:
        assert time.monotonic() < deadline, "the model server never saw the client go"
        await asyncio.sleep(0.01)  # the socket is closed by the event loop
    assert record["disconnected_at"] - closed < 1
    assert record["completed"] is False
    assert record["chunks_sent"] < 10


async def test_requests_carry_the_active_traceparent(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        await collect(assistant.stream("hi", []))
        context = span.get_span_context()
    headers = model_server.requests()[0]["headers"]
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 0x01, "sampled"
    assert trace.get_current_span().get_span_context().is_valid is False


async def test_the_settings_build_this_assistant(model_server: ModelServer) -> None:
    settings = Settings(
        assistant="openai",
        model="gpt-from-settings",
        openai_api_key="sk-from-settings",
        openai_base_url=model_server.base_url,
        system_prompt="Be brief.",
        max_output_tokens=7,
        model_timeout_s=1.5,
        model_max_retries=1,
    )
    retries: list[int] = []
    assistant = create_assistant(settings, on_retry=lambda: retries.append(1))
    try:
        assert isinstance(assistant, OpenAIAssistant)
        assert (assistant.provider, assistant.model) == ("openai", "gpt-from-settings")
        assert assistant.server_url == model_server.base_url + "/"
        model_server.script({"status": 429, "retry_after": 0.1})
        pieces, _ = await collect(assistant.stream("hi", []))
        assert "".join(pieces) == "Reply 1: hi"
        assert retries == [1], "one retry, reported"
        request = model_server.requests()[1]
        assert request["headers"]["authorization"] == "Bearer sk-from-settings"
        assert request["body"]["model"] == "gpt-from-settings"
        assert request["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert request["body"]["max_tokens"] == 7
        model_server.default(status=500)
        with pytest.raises(AssistantError):
            await collect(assistant.stream("again", []))
        assert len(model_server.requests()) == 4, "then one try and max_retries=1 retry"
        model_server.default(hang=True)
        started = time.monotonic()
        with pytest.raises(AssistantError):
            await collect(assistant.stream("and again", []))
        assert 1.4 <= time.monotonic() - started < 2.5, "CHAT_MODEL_TIMEOUT_S bounds the wait"
    finally:
        await assistant.close()


def test_an_assistant_error_is_named_by_its_cause_or_its_own_type() -> None:
    assert AssistantError("x", error_type="RateLimitError").error_type == "RateLimitError"
    assert AssistantError("x").error_type == "AssistantError"


async def test_the_models_are_those_the_server_lists_sorted_once_each(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    """``GET /models`` (the server's list holds the models it was asked for, and its own),
    with the request's trace context and key."""
    await collect(assistant.stream("hi", [], model="zz-asked"))
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("listing") as span:
        listed = await assistant.models()
        trace_id = f"{span.get_span_context().trace_id:032x}"
    assert listed == sorted({"zz-asked", *OFFERED})
    headers = model_server.listings()[-1]["headers"]
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["authorization"] == "Bearer sk-unit-test"
    assert headers["accept"] == "application/json"


async def test_a_server_that_cannot_list_its_models_is_a_failure_without_its_words() -> None:
    gone = OpenAIAssistant(
        model="m",
        api_key="sk-unit-test",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        timeout_s=1,
        max_retries=0,
    )
    try:
        with pytest.raises(AssistantError) as failure:
            await gone.models()
    finally:
        await gone.close()
    # As a reply's request names it.
    assert failure.value.error_type == "APIConnectionError"
    assert str(failure.value) == "the model call failed (no HTTP answer)"


async def test_a_listing_refused_is_retried_then_named_by_its_status(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    model_server.script_listings({"status": 503, "retry_after": 0}, {"status": 503})
    with pytest.raises(AssistantError) as failure:
        await assistant.models()
    assert failure.value.error_type == "InternalServerError"
    assert str(failure.value) == "the model call failed (HTTP 503)"
    assert len(model_server.listings()) == 2, "the one retry the assistant allows"
    model_server.script_listings({"status": 401, "error_message": "bad key {api_key}"})
    with pytest.raises(AssistantError) as refused:
        await assistant.models()
    assert refused.value.error_type == "AuthenticationError"
    assert "sk-unit-test" not in str(refused.value)
    assert len(model_server.listings()) == 3, "not retried"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"object": "list"}',
        '{"data": [{"object": "model"}]}',
        '{"data": [{"id": 7}]}',
        '{"data": "gpt"}',
        "[]",
    ],
)
async def test_a_listing_that_is_not_one_is_a_failure(
    assistant: OpenAIAssistant, model_server: ModelServer, body: str
) -> None:
    model_server.script_listings({"body": body})
    with pytest.raises(AssistantError) as failure:
        await assistant.models()
    assert failure.value.error_type == "APIResponseValidationError"
    assert str(failure.value) == "the model server's list of models could not be read"
    assert str(failure.value.__cause__) in (
        "not a list of models",
        "a model id that is not a string",
    ), "the log's traceback says what was wrong with it"


async def test_a_conversations_own_instructions_replace_the_deployments(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    await collect(assistant.stream("one", [], system_prompt="Answer in French."))
    await collect(assistant.stream("two", [], system_prompt=""))
    first, second = (request["body"]["messages"] for request in model_server.requests())
    assert first[0] == {"role": "system", "content": "Answer in French."}
    assert [m["role"] for m in second] == ["user"], "none at all"


async def test_a_stream_without_text_until_the_timeout_fails_at_the_timeout(
    assistant: OpenAIAssistant, model_server: ModelServer
) -> None:
    """Chunks that hold no text keep each read short, so only the wait for the first piece
    of the reply (2 s here) ends it, as for a server that does not answer at all."""
    model_server.script({"chunks": [""] * 40, "chunk_delay_s": 0.1})
    started = time.monotonic()
    with pytest.raises(AssistantError) as failure:
        await collect(assistant.stream("hi", []))
    assert 1.9 <= time.monotonic() - started < 3
    assert (failure.value.error_type, str(failure.value)) == (
        "TimeoutError",
        "no reply from the model within 2 s",
    )


@pytest.mark.parametrize(
    ("base_url", "server_url", "limit"),
    [
        (None, "https://api.openai.com/v1/", "max_completion_tokens"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1/", "max_completion_tokens"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/", "max_tokens"),
        ("http://127.0.0.1:11434/v1//", "http://127.0.0.1:11434/v1/", "max_tokens"),
    ],
)
async def test_the_server_and_its_output_limit_come_from_the_base_url(
    base_url: str | None, server_url: str, limit: str
) -> None:
    """OpenAI's own API when none is given; the GenAI telemetry's server address, and the name
    of the output limit the server knows, from it."""
    made = OpenAIAssistant(model="m", api_key="sk-x", base_url=base_url, max_output_tokens=50)
    try:
        assert made.server_url == server_url
        assert made._limits == {limit: 50}
    finally:
        await made.close()
