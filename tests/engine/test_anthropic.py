"""Anthropic Messages provider: against a real Messages-speaking server on loopback (answering
with the real local model), and MockTransport for the failure shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
import pytest_asyncio

from engine.errors import (
    ProviderAuthFailed,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from engine.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    EndpointConfig,
    Finish,
    LocalProvider,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
    collect_with_tools,
    probe,
)
from tests.engine.messages_server import MODEL, MessagesServer
from tests.engine.model_servers import bundled_model, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

API_KEY = "sk-ant-test-key"
HELLO = ChatRequest((ChatMessage("user", "Say hello."),), max_tokens=8)
CITY = ToolDefinition(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[MessagesServer]:
    local = LocalProvider(bundled_model(), context_length=2048, n_threads=2)
    messages = MessagesServer(local, API_KEY, free_port())
    await messages.start()
    yield messages
    await messages.stop()
    await local.close()


def config_for(base_url: str, **overrides: Any) -> EndpointConfig:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "model": MODEL,
        "name": "anthropic",
        "api_key": API_KEY,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)


@pytest_asyncio.fixture(loop_scope="module")
async def provider(server: MessagesServer) -> AsyncIterator[AnthropicProvider]:
    anthropic = AnthropicProvider(config_for(server.base_url))
    yield anthropic
    await anthropic.aclose()


async def test_streams_text_with_usage(provider: AnthropicProvider) -> None:
    events = [e async for e in provider.stream(HELLO)]
    assert isinstance(events[0], TextDelta)
    usage, finish = events[-2], events[-1]
    assert isinstance(usage, Usage) and usage.prompt_tokens > 0 and usage.completion_tokens >= 1
    assert finish == Finish("length") or finish == Finish("stop")


async def test_system_prompt_and_tool_result_blocks(
    provider: AnthropicProvider, server: MessagesServer
) -> None:
    request = ChatRequest(
        (
            ChatMessage("system", "You are terse."),
            ChatMessage("system", "Answer in English."),
            ChatMessage("user", "Weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=(ToolCall("tu_1", "get_weather", '{"city":"Paris"}'),)),
            ChatMessage("tool", "sunny, 21 C", tool_call_id="tu_1"),
            ChatMessage("user", "So, how is it?"),
        ),
        max_tokens=6,
    )  # fmt: skip
    text, _, _ = await provider.complete(request)
    assert text.strip()
    sent = server.requests[-1]
    assert sent["system"] == "You are terse.\n\nAnswer in English."
    assert [t["role"] for t in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    # The tool result and the next user text merge into one user turn, as the API requires.
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny, 21 C"},
        {"type": "text", "text": "So, how is it?"},
    ]


async def test_tool_use_streams_input_json_deltas(
    provider: AnthropicProvider, server: MessagesServer
) -> None:
    request = ChatRequest(
        (ChatMessage("user", "What is the weather in Paris?"),),
        max_tokens=40,
        temperature=0.0,
        tools=(CITY,),
        tool_choice="required",
    )
    events = [e async for e in provider.stream(request)]
    assert server.requests[-1]["tool_choice"] == {"type": "any"}
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(index=0, id="toolu_test1", name="get_weather")
    assert len(deltas) > 2  # the arguments arrive in pieces

    async def replay() -> AsyncIterator[Any]:
        for event in events:
            yield event

    _, calls, _, reason = await collect_with_tools(replay())
    assert reason == "tool_calls" and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)


async def test_json_schema_through_a_forced_tool(
    provider: AnthropicProvider, server: MessagesServer
) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
    }
    request = ChatRequest(
        (ChatMessage("user", "Name a colour."),), max_tokens=30, temperature=0.0, json_schema=schema
    )
    text, _, reason = await provider.complete(request)
    assert server.requests[-1]["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert reason == "stop"
    jsonschema.validate(json.loads(text), schema)


async def test_count_tokens_uses_the_endpoint(provider: AnthropicProvider) -> None:
    assert await provider.count_tokens("hello world") >= 2
    assert provider._count_available is True


async def test_wrong_key_is_auth_failed(server: MessagesServer) -> None:
    provider = AnthropicProvider(config_for(server.base_url, api_key="sk-wrong"))
    with pytest.raises(ProviderAuthFailed, match="authentication_error"):
        await provider.complete(HELLO)
    await provider.aclose()


async def test_probe_lists_models_and_detects_streaming_and_tools(server: MessagesServer) -> None:
    found = await probe("anthropic", config_for(server.base_url))
    assert found.reachable and found.model_listed and found.streaming and found.tools


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


START = event("message_start", {"message": {"usage": {"input_tokens": 9, "output_tokens": 1}}})
TEXT = event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})


def mock_provider(*bodies: str | httpx.Response) -> tuple[AnthropicProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = bodies[min(len(seen), len(bodies)) - 1]
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=answer)

    config = config_for("https://api.example.org")
    return AnthropicProvider(config, httpx.MockTransport(handler)), seen


async def test_headers_and_usage_from_message_delta() -> None:
    body = "".join(
        [
            START,
            TEXT,
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            event("content_block_stop", {"index": 0}),
            event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            event("message_stop", {}),
        ]
    )  # fmt: skip
    provider, seen = mock_provider(body)
    assert await provider.complete(HELLO) == ("Hi", Usage(9, 3), "stop")
    assert seen[0].headers["x-api-key"] == API_KEY
    assert seen[0].headers["anthropic-version"] == "2023-06-01"
    assert seen[0].url.path == "/v1/messages"


async def test_overloaded_error_event_mid_stream() -> None:
    body = START + TEXT + event("error", {"error": {"type": "overloaded_error", "message": "busy"}})
    provider, _ = mock_provider(body)
    with pytest.raises(ProviderUnavailable, match="overloaded_error"):
        await provider.complete(HELLO)


async def test_rate_limit_error_event() -> None:
    body = START + event("error", {"error": {"type": "rate_limit_error", "message": "slow"}})
    provider, _ = mock_provider(body)
    with pytest.raises(ProviderRateLimited):
        await provider.complete(HELLO)


async def test_missing_message_stop_is_a_protocol_error() -> None:
    provider, _ = mock_provider(START + TEXT)
    with pytest.raises(ProviderProtocolError, match="message_stop"):
        await provider.complete(HELLO)


async def test_529_overloaded_is_retried() -> None:
    ok = (
        START
        + event("message_delta", {"delta": {"stop_reason": "end_turn"}})
        + event("message_stop", {})
    )
    provider, seen = mock_provider(httpx.Response(529, text="overloaded"), ok)
    assert await provider.complete(HELLO) == ("", Usage(9, 1), "stop")
    assert len(seen) == 2


async def test_input_json_for_an_unknown_block_is_a_protocol_error() -> None:
    delta = {"index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    provider, _ = mock_provider(START + event("content_block_delta", delta))
    with pytest.raises(ProviderProtocolError):
        await provider.complete(ChatRequest(HELLO.messages, tools=(CITY,), tool_choice="required"))
