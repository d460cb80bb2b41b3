"""The provider contract suite: the same tests over every provider implementation.

Parameters: the local SmolLM2 worker, the OpenAI-compatible provider against a real
``llama_cpp.server``, the Anthropic provider against a real Messages-speaking server backed by
the local model, and a fallback chain whose first member is down (so every request goes through
a real fallback to the local model). A new provider joins by adding one fixture and one name
to ``PROVIDERS``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import jsonschema
import pytest
import pytest_asyncio

from engine.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    EndpointConfig,
    Fallback,
    FallbackChain,
    Finish,
    LocalProvider,
    OpenAICompatibleProvider,
    Provider,
    QueuePosition,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
    Usage,
    collect_with_tools,
)
from tests.engine.messages_server import MODEL, MessagesServer
from tests.engine.model_servers import SERVER_CONTEXT, LlamaServer, bundled_model, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROVIDERS = ["local", "openai", "anthropic", "fallback"]
API_KEY = "sk-test-contract"
STORY = (ChatMessage("user", "Write a long story about a dragon who learns to bake bread."),)
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(bundled_model(), context_length=SERVER_CONTEXT, n_threads=2)
    yield provider
    await provider.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def openai(llama_server: LlamaServer) -> AsyncIterator[OpenAICompatibleProvider]:
    config = EndpointConfig(
        base_url=llama_server.base_url,
        model="smollm2",
        name="llama-server",
        json_mode="json_object",
        context_length=SERVER_CONTEXT,
    )
    provider = OpenAICompatibleProvider(config)
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def anthropic(local: LocalProvider) -> AsyncIterator[AnthropicProvider]:
    server = MessagesServer(local, API_KEY, free_port())
    await server.start()
    config = EndpointConfig(
        base_url=server.base_url,
        model=MODEL,
        name="messages-server",
        api_key=API_KEY,
        context_length=SERVER_CONTEXT,
    )
    provider = AnthropicProvider(config)
    yield provider
    await provider.aclose()
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fallback(local: LocalProvider) -> AsyncIterator[FallbackChain]:
    # Nothing listens on this port: every request falls back to the local model.
    down = OpenAICompatibleProvider(
        EndpointConfig(
            base_url=f"http://127.0.0.1:{free_port()}/v1",
            model="gone",
            name="down",
            max_retries=0,
            context_length=SERVER_CONTEXT,
        )
    )
    yield FallbackChain([("down", down), ("local", local)])
    await down.aclose()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.getfixturevalue(request.param)
    return chosen


def _answer_events(events: list[StreamEvent]) -> list[StreamEvent]:
    """The events after any queue positions and fallbacks (which only ever come first)."""
    start = 0
    while start < len(events) and isinstance(events[start], QueuePosition | Fallback):
        start += 1
    return events[start:]


async def test_implements_the_protocol(provider: Provider) -> None:
    assert isinstance(provider, Provider)
    caps = provider.capabilities()
    assert caps.context_length > 0 and caps.streaming and not caps.vision


async def test_stream_is_deltas_then_usage_then_finish(provider: Provider) -> None:
    request = ChatRequest((ChatMessage("user", "Say hello in one short sentence."),), 24)
    events = _answer_events([e async for e in provider.stream(request)])
    assert isinstance(events[-1], Finish) and events[-1].reason in ("stop", "length")
    assert isinstance(events[-2], Usage)
    deltas = events[:-2]
    assert deltas and all(isinstance(e, TextDelta) for e in deltas)
    assert "".join(e.text for e in deltas if isinstance(e, TextDelta)).strip()
    assert events[-2].prompt_tokens > 0 and events[-2].completion_tokens >= 1


async def test_complete_matches_the_stream_shape(provider: Provider) -> None:
    text, usage, reason = await provider.complete(
        ChatRequest((ChatMessage("user", "Name a colour."),), 16, temperature=0.0)
    )
    assert text.strip()
    assert usage.completion_tokens >= 1 and usage.total_tokens > usage.completion_tokens
    assert reason in ("stop", "length")


async def test_max_tokens_ends_with_length(provider: Provider) -> None:
    _, usage, reason = await provider.complete(ChatRequest(STORY, max_tokens=4))
    assert reason == "length"
    assert 1 <= usage.completion_tokens <= 6


async def test_system_prompt_is_accepted(provider: Provider) -> None:
    request = ChatRequest(
        (
            ChatMessage("system", "You are a terse assistant."),
            ChatMessage("user", "Say yes."),
        ),
        8,
    )
    text, _, _ = await provider.complete(request)
    assert text.strip()


async def test_cancel_ends_the_stream_with_cancelled(provider: Provider) -> None:
    cancel = asyncio.Event()
    seen: list[StreamEvent] = []
    async for event in provider.stream(ChatRequest(STORY, max_tokens=400), cancel):
        seen.append(event)
        if isinstance(event, TextDelta) and sum(isinstance(e, TextDelta) for e in seen) == 3:
            cancel.set()
    answer = _answer_events(seen)
    assert isinstance(answer[-1], Finish) and answer[-1].reason == "cancelled"
    assert isinstance(answer[-2], Usage)
    # Far fewer than the 400 tokens asked for: generation stopped, it did not run to the end.
    assert sum(isinstance(e, TextDelta) for e in answer) < 100
    # The provider serves the next request normally.
    text, _, _ = await provider.complete(ChatRequest((ChatMessage("user", "Hi"),), 4))
    assert text


async def test_json_schema_constrains_the_answer(provider: Provider) -> None:
    assert provider.capabilities().json_schema
    request = ChatRequest(
        (ChatMessage("user", "Invent a person: give a name and an age."),),
        max_tokens=60,
        temperature=0.0,
        json_schema=PERSON,
    )
    text, _, reason = await provider.complete(request)
    assert reason == "stop", text
    jsonschema.validate(json.loads(text), PERSON)


async def test_forced_tool_call_when_tools_are_offered(provider: Provider) -> None:
    if not provider.capabilities().tools:
        pytest.skip("this provider does not call tools natively (capabilities().tools)")
    weather = ToolDefinition(
        "get_weather",
        "The weather in a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    request = ChatRequest(
        (ChatMessage("user", "What is the weather in Paris?"),),
        max_tokens=40,
        temperature=0.0,
        tools=(weather,),
        tool_choice="required",
    )
    events = [e async for e in provider.stream(request)]
    assert any(isinstance(e, ToolCallDelta) for e in events)

    async def replay() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event

    _, calls, _, reason = await collect_with_tools(replay())
    assert reason == "tool_calls"
    assert [c.name for c in calls] == ["get_weather"] and calls[0].id
    assert isinstance(json.loads(calls[0].arguments)["city"], str)


async def test_count_tokens_grows_with_text(provider: Provider) -> None:
    short = await provider.count_tokens("hello")
    long = await provider.count_tokens("hello " * 50)
    assert 1 <= short < long


async def test_health_reports_up(provider: Provider) -> None:
    report = await provider.health()
    assert report["up"] is True
    assert API_KEY not in json.dumps(report)
