"""LocalProvider against the real bundled SmolLM2 model, in its real worker process.

One provider serves the whole module (the model loads once); tests that need a different
context window or timeout build their own small provider.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from engine import (
    ChatMessage,
    ChatRequest,
    ContextOverflow,
    Finish,
    LocalProvider,
    Provider,
    ProviderUnavailable,
    TextDelta,
    Usage,
    WorkerCrashed,
)
from models import load_catalog

pytestmark = pytest.mark.asyncio(loop_scope="module")

STORY = (ChatMessage("user", "Write a long story about a dragon who learns to bake bread."),)


def model_path() -> Path:
    path = load_catalog().default_entry().path()
    assert path is not None and path.is_file(), "the bundled SmolLM2 model must be installed"
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider(model_path(), context_length=4096, n_threads=2)
    yield local
    await local.close()


def hello(max_tokens: int = 32) -> ChatRequest:
    return ChatRequest((ChatMessage("user", "Say hello in one short sentence."),), max_tokens)


async def test_stream_yields_deltas_then_usage_then_finish(provider: LocalProvider) -> None:
    events = [event async for event in provider.stream(hello())]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas and all(isinstance(e, TextDelta) for e in events[: len(deltas)])
    assert isinstance(events[-2], Usage) and isinstance(events[-1], Finish)
    assert events[-1].reason in ("stop", "length")
    assert "".join(d.text for d in deltas).strip()
    assert events[-2].prompt_tokens > 5 and events[-2].completion_tokens >= 1


async def test_complete_returns_text_and_usage(provider: LocalProvider) -> None:
    text, usage, reason = await provider.complete(hello())
    assert text.strip()
    assert usage.completion_tokens >= 1 and usage.total_tokens > usage.completion_tokens
    assert reason in ("stop", "length")


async def test_max_tokens_stops_with_length(provider: LocalProvider) -> None:
    _, usage, reason = await provider.complete(ChatRequest(STORY, max_tokens=4))
    assert reason == "length"
    # Re-tokenising the text may merge or split a token at the edges.
    assert 1 <= usage.completion_tokens <= 5


async def test_cancel_event_stops_within_a_second(provider: LocalProvider) -> None:
    cancel = asyncio.Event()
    events = []
    cancelled_at = 0.0
    async for event in provider.stream(ChatRequest(STORY, max_tokens=512), cancel):
        events.append(event)
        if isinstance(event, TextDelta) and not cancel.is_set():
            cancel.set()
            cancelled_at = time.monotonic()
    assert time.monotonic() - cancelled_at < 1.0
    assert events[-1] == Finish("cancelled")
    assert isinstance(events[-2], Usage) and events[-2].completion_tokens < 50
    # The worker is free again at once.
    text, _, _ = await provider.complete(hello(8))
    assert text.strip()


async def test_abandoned_stream_frees_the_provider(provider: LocalProvider) -> None:
    # 4000 tokens would take ~45 s: finishing well before proves the worker stopped generating
    # (the bound is loose so a busy machine cannot fail it).
    stream = provider.stream(ChatRequest(STORY, max_tokens=4000))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    started = time.monotonic()
    text, _, _ = await provider.complete(hello(8))
    assert text.strip() and time.monotonic() - started < 20


async def test_cancelled_consumer_task_frees_the_provider(provider: LocalProvider) -> None:
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream(ChatRequest(STORY, max_tokens=4000)):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    text, _, _ = await provider.complete(hello(8))
    assert text.strip() and time.monotonic() - started < 20


async def test_killed_worker_raises_and_restarts(provider: LocalProvider) -> None:
    before = (await provider.health())["pid"]
    with pytest.raises(WorkerCrashed) as info:
        async for event in provider.stream(ChatRequest(STORY, max_tokens=512)):
            if isinstance(event, TextDelta):
                os.kill((await provider.health())["pid"], signal.SIGKILL)
    assert info.value.code == "worker_crashed" and info.value.retryable
    assert (await provider.health())["up"] is False
    text, _, _ = await provider.complete(hello(8))
    assert text.strip()
    after = await provider.health()
    assert after["up"] and after["pid"] not in (None, before)


async def test_prompt_longer_than_context_is_refused() -> None:
    small = LocalProvider(model_path(), context_length=2048, token_timeout=2.0)
    try:
        request = ChatRequest((ChatMessage("user", "word " * 20000),), max_tokens=64)
        with pytest.raises(ContextOverflow) as info:
            async for _ in small.stream(request):
                pytest.fail("nothing may be generated")
        assert info.value.code == "context_overflow" and not info.value.retryable
        assert "2048" in info.value.message and "64" in info.value.message
        # A prompt that fits, plus a max_tokens that does not, is refused the same way.
        with pytest.raises(ContextOverflow):
            await small.complete(ChatRequest(STORY, max_tokens=2040))

        # A hung worker (stopped, not dead) is killed after token_timeout and replaced.
        pid = (await small.health())["pid"]
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(WorkerCrashed):
            await small.complete(hello(8))
        assert time.monotonic() - started < 5
        assert (await small.count_tokens("hello")) >= 1
        assert (await small.health())["pid"] != pid
    finally:
        await small.close()
    assert (await small.health())["up"] is False


async def test_count_tokens(provider: LocalProvider) -> None:
    assert await provider.count_tokens("hello world") >= 2
    assert await provider.count_tokens("word " * 100) > await provider.count_tokens("word")


async def test_health_and_capabilities(provider: LocalProvider) -> None:
    assert isinstance(provider, Provider)
    health = await provider.health()
    assert health["provider"] == "local" and health["up"] and isinstance(health["pid"], int)
    caps = provider.capabilities()
    assert caps.context_length == 4096 and caps.streaming and not caps.tools


async def test_missing_model_file_is_unavailable(tmp_path: Path) -> None:
    missing = LocalProvider(tmp_path / "absent.gguf", context_length=2048)
    with pytest.raises(ProviderUnavailable) as info:
        await missing.complete(hello())
    assert info.value.retryable and (await missing.health())["up"] is False
