"""OpenAI-compatible provider: the wire format, retries, circuit, TLS and failure shapes.

The happy path runs against the real ``llama_cpp.server`` (here and in the contract suite);
``httpx.MockTransport`` fakes only the failures a real server will not produce on demand, and a
raw TCP server on loopback produces a stream that stalls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from engine.errors import (
    CircuitOpen,
    ProviderAuthFailed,
    ProviderConfigInvalid,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ResponseTooLarge,
)
from engine.providers import (
    ChatMessage,
    ChatRequest,
    EndpointConfig,
    Finish,
    OpenAICompatibleProvider,
    TextDelta,
    ToolCall,
    ToolDefinition,
    Usage,
    collect_with_tools,
    probe,
)
from tests.engine.model_servers import LlamaServer, free_port

HELLO = ChatRequest((ChatMessage("user", "Say hello."),), max_tokens=8)
SECRET = "sk-very-secret-key"
Handler = Callable[[httpx.Request], httpx.Response]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}
    ]}  # fmt: skip


def sse_body(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    parts = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


HAPPY = sse_body(
    chunk({"role": "assistant"}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({}, "stop"),
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
)


class Recorder:
    """A MockTransport handler that answers from a script and records requests."""

    def __init__(self, *answers: httpx.Response | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return answer(request) if callable(answer) else answer


def provider_for(recorder: Recorder, **overrides: Any) -> OpenAICompatibleProvider:
    settings: dict[str, Any] = {
        "base_url": "https://models.example.org/v1",
        "model": "m1",
        "name": "mock",
        "api_key": SECRET,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(overrides)
    return OpenAICompatibleProvider(EndpointConfig(**settings), httpx.MockTransport(recorder))


async def test_request_body_and_headers() -> None:
    recorder = Recorder(sse_response(HAPPY))
    provider = provider_for(recorder)
    request = ChatRequest(
        (
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Weather?"),
            ChatMessage("assistant", "", tool_calls=(ToolCall("c9", "get_weather", "{}"),)),
            ChatMessage("tool", "sunny", tool_call_id="c9"),
        ),
        max_tokens=5,
        stop=("END",),
        tools=(ToolDefinition("get_weather", "Weather."),),
    )
    events = [e async for e in provider.stream(request)]
    sent = recorder.requests[0]
    body = json.loads(sent.content)
    assert sent.url.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "m1" and body["max_tokens"] == 5 and body["stop"] == ["END"]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "auto"
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert body["messages"][3] == {"role": "tool", "content": "sunny", "tool_call_id": "c9"}
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(11, 2), Finish("stop")]


async def test_azure_style_api_version_and_api_key_header() -> None:
    recorder = Recorder(sse_response(HAPPY))
    provider = provider_for(
        recorder,
        base_url="https://corp.example.org/openai/deployments/gpt",
        api_version="2024-06-01",
        auth_header="api-key",
    )
    await provider.complete(HELLO)
    sent = recorder.requests[0]
    assert sent.url.params["api-version"] == "2024-06-01"
    assert sent.headers["api-key"] == SECRET and "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": {}}}),
        ("json_object", {"type": "json_object", "schema": {}}),
    ],
)
async def test_json_schema_is_sent_as_response_format(mode: str, expected: dict[str, Any]) -> None:
    schema = {"type": "object"}
    recorder = Recorder(sse_response(HAPPY))
    provider = provider_for(recorder, json_mode=mode)
    await provider.complete(ChatRequest(HELLO.messages, json_schema=schema))
    sent = json.loads(recorder.requests[0].content)["response_format"]
    key = "json_schema" if mode == "json_schema" else None
    if key:
        expected[key]["schema"] = schema
    else:
        expected["schema"] = schema
    assert sent == expected


async def test_incremental_tool_call_deltas_are_joined() -> None:
    body = sse_body(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    )  # fmt: skip
    provider = provider_for(Recorder(sse_response(body)))
    text, calls, usage, reason = await collect_with_tools(provider.stream(HELLO))
    assert text == "" and reason == "tool_calls"
    assert calls == (
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_time", "{}"),
    )
    # No usage chunk: estimated, and the completion counted from the deltas.
    assert usage.prompt_tokens > 0 and usage.completion_tokens == 4


async def test_429_is_retried_after_retry_after() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"retry-after": "0"}, text="slow down"),
        sse_response(HAPPY),
    )
    text, _, _ = await provider_for(recorder).complete(HELLO)
    assert text == "Hello" and len(recorder.requests) == 2


async def test_429_with_a_long_retry_after_goes_to_the_caller() -> None:
    recorder = Recorder(httpx.Response(429, headers={"retry-after": "120"}, text="quota"))
    provider = provider_for(recorder)
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after == 120 and caught.value.retryable
    assert len(recorder.requests) == 1
    assert provider.endpoint.breaker.state == "closed"


async def test_500_is_retried_then_fails_and_opens_the_circuit() -> None:
    recorder = Recorder(httpx.Response(500, text="boom"))
    provider = provider_for(recorder, max_retries=2, circuit_failures=3, circuit_cooldown=60)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete(HELLO)
    assert caught.value.context["status"] == 500 and "boom" in caught.value.message
    assert len(recorder.requests) == 3
    assert provider.endpoint.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await provider.complete(HELLO)
    assert len(recorder.requests) == 3  # the open circuit sent nothing


async def test_5xx_then_success_recovers() -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(502), sse_response(HAPPY))
    provider = provider_for(recorder, max_retries=2)
    text, usage, _ = await provider.complete(HELLO)
    assert text == "Hello" and usage == Usage(11, 2)
    assert provider.endpoint.breaker.state == "closed" and provider.endpoint.breaker.failures == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_not_retried(status: int) -> None:
    recorder = Recorder(httpx.Response(status, json={"error": {"message": "bad key"}}))
    provider = provider_for(recorder)
    with pytest.raises(ProviderAuthFailed) as caught:
        await provider.complete(HELLO)
    assert not caught.value.retryable and len(recorder.requests) == 1
    assert SECRET not in caught.value.message
    assert provider.endpoint.breaker.state == "closed"


async def test_400_is_a_rejection() -> None:
    recorder = Recorder(httpx.Response(400, json={"error": "unknown model"}))
    with pytest.raises(ProviderRejected, match="unknown model"):
        await provider_for(recorder).complete(HELLO)


async def test_malformed_sse_is_a_protocol_error() -> None:
    body = sse_body(chunk({"content": "Hi"}), "this is not json")
    with pytest.raises(ProviderProtocolError):
        await provider_for(Recorder(sse_response(body))).complete(HELLO)


async def test_truncated_json_is_a_protocol_error() -> None:
    body = (
        sse_body(chunk({"content": "Hi"}), done=False)
        + b'data: {"choices": [{"delta": {"content": "th'
    )
    with pytest.raises(ProviderProtocolError):
        await provider_for(Recorder(sse_response(body))).complete(HELLO)


async def test_stream_without_finish_or_done_is_a_protocol_error() -> None:
    body = sse_body(chunk({"content": "Hi"}), done=False)
    with pytest.raises(ProviderProtocolError, match="before finishing"):
        await provider_for(Recorder(sse_response(body))).complete(HELLO)


async def test_huge_response_is_cut_off() -> None:
    body = sse_body(*(chunk({"content": "x" * 500}) for _ in range(100)))
    provider = provider_for(Recorder(sse_response(body)), max_response_bytes=10_000)
    with pytest.raises(ResponseTooLarge):
        await provider.complete(HELLO)


async def test_error_chunk_mid_stream() -> None:
    body = sse_body(chunk({"content": "Hi"}), {"error": {"message": "overloaded"}})
    with pytest.raises(ProviderUnavailable, match="overloaded"):
        await provider_for(Recorder(sse_response(body))).complete(HELLO)


async def stalling_server(first: bytes) -> tuple[asyncio.Server, int]:
    """A raw HTTP server that sends headers and ``first``, then never another byte."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + f"{len(first):x}\r\n".encode() + first + b"\r\n"
        )  # fmt: skip
        await writer.drain()
        await asyncio.sleep(30)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    return server, port


async def test_stalled_stream_is_a_read_timeout() -> None:
    server, port = await stalling_server(sse_body(chunk({"content": "Hi"}), done=False))
    config = EndpointConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", name="stall", read_timeout=1.0
    )
    provider = OpenAICompatibleProvider(config)
    received: list[str] = []
    try:
        with pytest.raises(ProviderTimeout, match="stopped sending"):
            async for event in provider.stream(HELLO):
                if isinstance(event, TextDelta):
                    received.append(event.text)
        assert received == ["Hi"]
        assert provider.endpoint.breaker.failures == 1
    finally:
        await provider.aclose()
        server.close()


async def test_cancel_while_the_endpoint_is_silent() -> None:
    server, port = await stalling_server(sse_body(chunk({"content": "Hi"}), done=False))
    config = EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", read_timeout=60)
    provider = OpenAICompatibleProvider(config)
    cancel = asyncio.Event()
    events = []
    try:
        async for event in provider.stream(HELLO, cancel):
            events.append(event)
            if isinstance(event, TextDelta):
                asyncio.get_running_loop().call_later(0.1, cancel.set)
        assert events[0] == TextDelta("Hi") and events[-1] == Finish("cancelled")
    finally:
        await provider.aclose()
        server.close()


async def test_connection_refused_is_retried_then_unavailable() -> None:
    config = EndpointConfig(
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model="m",
        max_retries=1,
        backoff_initial=0.01,
        circuit_failures=2,
    )
    provider = OpenAICompatibleProvider(config)
    with pytest.raises(ProviderUnavailable, match="cannot be reached"):
        await provider.complete(HELLO)
    assert provider.endpoint.breaker.state == "open"
    await provider.aclose()


def test_config_is_validated() -> None:
    with pytest.raises(ProviderConfigInvalid):
        EndpointConfig(base_url="ftp://example.org", model="m")
    with pytest.raises(ProviderConfigInvalid):
        EndpointConfig(base_url="https://example.org", model="")
    with pytest.raises(ProviderConfigInvalid):
        EndpointConfig(base_url="https://example.org", model="m", read_timeout=0)


def test_missing_ca_bundle_is_a_config_error(tmp_path: Any) -> None:
    config = EndpointConfig(
        base_url="https://example.org/v1", model="m", ca_bundle=str(tmp_path / "none.pem")
    )
    with pytest.raises(ProviderConfigInvalid, match="CA bundle"):
        OpenAICompatibleProvider(config)


def test_insecure_logs_a_warning_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    config = EndpointConfig(
        base_url="https://example.org/v1", model="m", insecure=True, api_key=SECRET
    )
    with caplog.at_level(logging.WARNING, logger="engine.providers.remote"):
        OpenAICompatibleProvider(config)
    assert "verification is disabled" in caplog.text and SECRET not in caplog.text
    assert SECRET not in repr(config)


async def test_real_server_streaming_count_tokens_and_probe(llama_server: LlamaServer) -> None:
    config = EndpointConfig(base_url=llama_server.base_url, model="smollm2", name="llama")
    provider = OpenAICompatibleProvider(config)
    try:
        events = [e async for e in provider.stream(HELLO)]
        assert isinstance(events[0], TextDelta) and events[-1] == Finish("length")
        # The real tokenizer through /extras/tokenize/count, not the 4-characters estimate.
        assert await provider.count_tokens("hello world") == 2
        assert (await provider.health())["up"] is True
    finally:
        await provider.aclose()
    found = await probe("openai_compatible", config)
    assert found.reachable and found.streaming and found.tools
    assert found.models == (llama_server.model,)


async def test_probe_of_a_dead_endpoint() -> None:
    config = EndpointConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    found = await probe("openai_compatible", config)
    assert not found.reachable and found.error == "provider_unavailable"


async def test_probe_with_a_bad_key() -> None:
    recorder = Recorder(httpx.Response(401, text="no"))
    config = EndpointConfig(base_url="https://models.example.org/v1", model="m", api_key="x")
    found = await probe("openai_compatible", config, httpx.MockTransport(recorder))
    assert found.reachable and found.error == "provider_auth_failed" and not found.streaming
