"""The fallback chain: move on before the first token, fail clearly after it.

The main scenario uses the real ``llama_cpp.server`` as the first member and the real local
model as the second: kill the server mid-answer, see the clear mid-stream error, then retries
and a fallback to the local model, the circuit opening, and the circuit closing again once the
server is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from engine.errors import (
    CircuitOpen,
    InvalidChatRequest,
    ProviderAuthFailed,
    ProviderFailedMidStream,
    ProviderUnavailable,
)
from engine.providers import (
    ChatMessage,
    ChatRequest,
    CircuitBreaker,
    EndpointConfig,
    Fallback,
    FallbackChain,
    Finish,
    LocalProvider,
    OpenAICompatibleProvider,
    StreamEvent,
    TextDelta,
    Usage,
)
from tests.engine.model_servers import LlamaServer, bundled_model

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELLO = ChatRequest((ChatMessage("user", "Say hello."),), max_tokens=8)
STORY = ChatRequest(
    (ChatMessage("user", "Write a long story about a dragon who learns to bake bread."),),
    max_tokens=300,
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(bundled_model(), context_length=2048, n_threads=2)
    yield provider
    await provider.close()


def mocked(name: str, *answers: httpx.Response) -> OpenAICompatibleProvider:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    config = EndpointConfig(
        base_url="https://models.example.org/v1", model="m", name=name, max_retries=0
    )
    return OpenAICompatibleProvider(config, httpx.MockTransport(handler))


def events_of(chain: FallbackChain, request: ChatRequest = HELLO) -> AsyncIterator[StreamEvent]:
    return chain.stream(request)


async def test_retryable_failure_before_tokens_falls_back(local: LocalProvider) -> None:
    chain = FallbackChain([("remote", mocked("remote", httpx.Response(503))), ("local", local)])
    events = [e async for e in events_of(chain)]
    fallback = events[0]
    assert isinstance(fallback, Fallback)
    assert (fallback.from_provider, fallback.to_provider) == ("remote", "local")
    assert fallback.code == "provider_unavailable" and "503" in fallback.reason
    assert isinstance(events[1], TextDelta) and isinstance(events[-1], Finish)
    assert sum(isinstance(e, Fallback) for e in events) == 1


async def test_non_retryable_failure_is_raised(local: LocalProvider) -> None:
    chain = FallbackChain([("remote", mocked("remote", httpx.Response(401))), ("local", local)])
    with pytest.raises(ProviderAuthFailed):
        await chain.complete(HELLO)


async def test_every_member_failing_raises_the_last_error() -> None:
    chain = FallbackChain(
        [("a", mocked("a", httpx.Response(500))), ("b", mocked("b", httpx.Response(502)))]
    )
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderUnavailable, match="502"):
        async for event in chain.stream(HELLO):
            seen.append(event)
    assert len(seen) == 1 and isinstance(seen[0], Fallback)
    assert (seen[0].from_provider, seen[0].to_provider) == ("a", "b")
    assert seen[0].code == "provider_unavailable" and "500" in seen[0].reason


async def test_failure_after_tokens_is_not_spliced(local: LocalProvider) -> None:
    body = (
        b'data: {"choices": [{"delta": {"content": "Once"}, "finish_reason": null}]}\n\n'
        b'data: {"error": {"message": "upstream died"}}\n\n'
    )
    remote = mocked(
        "remote", httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    chain = FallbackChain([("remote", remote), ("local", local)])
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderFailedMidStream) as caught:
        async for event in chain.stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("Once")]
    assert caught.value.context == {"provider": "remote", "cause": "provider_unavailable"}


async def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(InvalidChatRequest):
        FallbackChain([])


async def test_capabilities_are_what_every_member_can_do(local: LocalProvider) -> None:
    remote = mocked("remote", httpx.Response(503))
    chain = FallbackChain([("remote", remote), ("local", local)])
    assert remote.capabilities().tools and not local.capabilities().tools
    caps = chain.capabilities()
    assert not caps.tools and caps.context_length == min(4096, 2048)


async def test_killed_server_falls_back_then_circuit_closes_on_restart(
    llama_server: LlamaServer, local: LocalProvider
) -> None:
    config = EndpointConfig(
        base_url=llama_server.base_url,
        model="smollm2",
        name="llama-server",
        max_retries=2,
        backoff_initial=0.05,
        backoff_max=0.2,
        # One failure for the broken stream, three for the refused attempts: then open.
        circuit_failures=4,
        circuit_cooldown=30.0,
    )
    remote = OpenAICompatibleProvider(config)
    chain = FallbackChain([("llama-server", remote), ("local", local)])
    # The breaker's own clock is moved by hand: how long the local model takes to answer on a
    # busy machine must not decide whether the cool-down has passed.
    clock = Clock()
    breaker = CircuitBreaker(config.name, config.circuit_failures, config.circuit_cooldown, clock)
    remote.endpoint.breaker = breaker
    try:
        # Killed mid-answer: a clear error, never the local model's words after the server's.
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderFailedMidStream):
            async for event in chain.stream(STORY):
                seen.append(event)
                if len(seen) == 3:
                    llama_server.kill()
        assert seen and all(isinstance(e, TextDelta) for e in seen)
        assert not any(isinstance(e, Fallback) for e in seen)

        # Next request: connection refused, retried, then answered by the local model.
        events = [e async for e in chain.stream(HELLO)]
        assert isinstance(events[0], Fallback) and events[0].code == "provider_unavailable"
        assert "cannot be reached" in events[0].reason
        assert isinstance(events[-2], Usage) and isinstance(events[-1], Finish)
        assert breaker.state == "open"

        # While open, the server is not even tried.
        events = [e async for e in chain.stream(HELLO)]
        assert isinstance(events[0], Fallback) and events[0].code == "provider_circuit_open"

        # Back up: after the cool-down the trial request succeeds and the circuit closes.
        llama_server.start()
        clock.now += config.circuit_cooldown
        assert breaker.state == "half_open"
        events = [e async for e in chain.stream(HELLO)]
        assert not any(isinstance(e, Fallback) for e in events)
        assert isinstance(events[0], TextDelta)
        assert breaker.state == "closed" and breaker.failures == 0
    finally:
        await remote.aclose()


class Clock:
    """A hand-moved monotonic clock for the circuit breaker."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_circuit_opens_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("ep", failure_threshold=2, cooldown=10, clock=clock)
    breaker.before_request()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_request()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_request()
    assert caught.value.retryable and caught.value.context["retry_after"] == 10
    clock.now += 10
    assert breaker.state == "half_open"
    breaker.before_request()  # the one trial
    with pytest.raises(CircuitOpen):
        breaker.before_request()  # a second caller waits for the trial's outcome
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0
    breaker.before_request()


async def test_a_failed_trial_reopens_for_a_fresh_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker("ep", failure_threshold=1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.before_request()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 4
    assert breaker.state == "open"
    clock.now += 1
    assert breaker.state == "half_open"


async def test_a_trial_ended_by_a_refusal_lets_the_next_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker("ep", failure_threshold=1, cooldown=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    breaker.before_request()
    breaker.release_trial()  # e.g. a 401: says nothing about the endpoint's health
    assert breaker.state == "half_open"
    breaker.before_request()
