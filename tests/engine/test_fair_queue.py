"""FairQueue: round-robin turns across keys, queue positions, bounds, cancellation, no leaks.

The loop logic runs against a scripted provider (a real async Provider that yields a token
every 10 ms and can be held at a gate); one test wraps the real LocalProvider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    EngineError,
    FairQueue,
    Finish,
    GenerationFailed,
    LocalProvider,
    Provider,
    QueueFull,
    QueuePosition,
    StreamEvent,
    TextDelta,
    Usage,
)
from models import load_catalog


class ScriptedProvider:
    """Answers ``tokens`` words per request; a request whose text is gated waits for its gate."""

    def __init__(self, tokens: int = 3) -> None:
        self.tokens = tokens
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def hold(self, label: str) -> asyncio.Event:
        self.gates[label] = asyncio.Event()
        return self.gates[label]

    def capabilities(self) -> Capabilities:
        return Capabilities(context_length=1234)

    async def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def health(self) -> dict[str, Any]:
        return {"provider": "scripted", "up": True}

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        raise AssertionError("FairQueue.complete must go through stream()")

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        label = request.messages[-1].content
        self.started.append(label)
        if label in self.gates:
            await self.gates[label].wait()
        for i in range(self.tokens):
            if cancel is not None and cancel.is_set():
                yield Usage(1, i)
                yield Finish("cancelled")
                return
            await asyncio.sleep(0.01)
            if label == "boom":
                raise GenerationFailed("scripted failure")
            yield TextDelta(f"{label}-{i} ")
        yield Usage(1, self.tokens)
        yield Finish("stop")


def ask(label: str) -> ChatRequest:
    return ChatRequest((ChatMessage("user", label),), max_tokens=16)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


async def collect(
    queue: FairQueue,
    label: str,
    key: str,
    into: list[StreamEvent] | None = None,
    cancel: asyncio.Event | None = None,
) -> list[StreamEvent]:
    events = [] if into is None else into
    async for event in queue.stream(ask(label), cancel=cancel, key=key):
        events.append(event)
    return events


def positions(events: list[StreamEvent]) -> list[QueuePosition]:
    return [e for e in events if isinstance(e, QueuePosition)]


async def start_held(queue: FairQueue, provider: ScriptedProvider) -> tuple[Any, asyncio.Event]:
    """A running request that holds the only slot until its gate is set."""
    gate = provider.hold("held")
    task = asyncio.create_task(collect(queue, "held", "holder"))
    await until(lambda: provider.started == ["held"])
    return task, gate


async def test_round_robin_serves_a_second_user_before_the_first_users_backlog() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider)
    gate = provider.hold("a0")
    tasks = [asyncio.create_task(collect(queue, "a0", "user:a"))]
    await until(lambda: provider.started == ["a0"])
    for i in range(1, 5):
        tasks.append(asyncio.create_task(collect(queue, f"a{i}", "user:a")))
    await until(lambda: queue.waiting() == {"user:a": 4})
    tasks.append(asyncio.create_task(collect(queue, "b0", "user:b")))
    await until(lambda: queue.stats()["waiting"] == 5)
    # A newcomer goes after b0 (never served either, but earlier), ahead of a's backlog.
    assert await asyncio.wait_for(_first_event(queue, "c0", "user:c"), 1) == [QueuePosition(2, 6)]
    gate.set()
    results = await asyncio.gather(*tasks)
    assert provider.started == ["a0", "b0", "a1", "a2", "a3", "a4"]
    assert all(isinstance(events[-1], Finish) for events in results)
    assert queue.stats()["in_flight"] == 0 and queue.waiting() == {}
    # No per-key bookkeeping outlives the keys' requests.
    assert not queue._last_served and not queue._in_flight


async def _first_event(queue: FairQueue, label: str, key: str) -> list[StreamEvent]:
    """The first event of a stream, which is then closed (leaving the queue)."""
    stream = queue.stream(ask(label), key=key)
    try:
        return [await anext(stream)]
    finally:
        await stream.aclose()


async def test_positions_are_reported_and_decrease_to_one() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider)
    held, gate = await start_held(queue, provider)
    tasks = []
    for user in ("u1", "u2", "u3"):
        tasks.append(asyncio.create_task(collect(queue, user, user)))
        await until(lambda user=user: queue.waiting().get(user) == 1)
    gate.set()
    first, _, last = await asyncio.gather(*tasks)
    await held
    assert positions(first) == [QueuePosition(1, 1)]
    assert positions(last) == [QueuePosition(3, 3), QueuePosition(2, 2), QueuePosition(1, 1)]
    # Positions come before the answer, which ends as usual.
    assert all(isinstance(e, QueuePosition) for e in last[:3])
    assert isinstance(last[-2], Usage) and last[-1] == Finish("stop")
    assert "".join(e.text for e in last if isinstance(e, TextDelta)) == "u3-0 u3-1 u3-2 "


async def test_a_full_queue_refuses_with_retry_after() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider, max_waiting=2, max_per_key=None)
    held, gate = await start_held(queue, provider)
    waiting = [asyncio.create_task(collect(queue, f"w{i}", f"user:{i}")) for i in range(2)]
    await until(lambda: queue.stats()["waiting"] == 2)
    with pytest.raises(QueueFull) as info:
        await queue.complete(ask("late"), key="user:late")
    error = info.value
    assert isinstance(error, EngineError) and error.code == "queue_full" and error.retryable
    # Two waiting plus one running, at the initial 5 s estimate.
    assert error.retry_after == 15 and error.context["waiting"] == 2
    gate.set()
    await asyncio.gather(held, *waiting)
    assert "late" not in provider.started
    assert queue.stats()["in_flight"] == 0


async def test_per_key_bound_leaves_room_for_other_keys() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider, max_per_key=2)
    held, gate = await start_held(queue, provider)
    mine = [asyncio.create_task(collect(queue, f"m{i}", "user:greedy")) for i in range(2)]
    await until(lambda: queue.waiting() == {"user:greedy": 2})
    with pytest.raises(QueueFull) as info:
        await anext(queue.stream(ask("m2"), key="user:greedy"))
    assert info.value.retry_after > 0 and info.value.code == "queue_full"
    other_task = asyncio.create_task(collect(queue, "o0", "user:other"))
    await until(lambda: queue.waiting().get("user:other") == 1)
    gate.set()
    await asyncio.gather(held, other_task, *mine)
    assert provider.started == ["held", "m0", "o0", "m1"]


async def test_cancel_while_waiting_leaves_the_queue_and_moves_the_others_up() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider)
    held, gate = await start_held(queue, provider)
    cancel = asyncio.Event()
    first = asyncio.create_task(collect(queue, "c1", "user:1", cancel=cancel))
    await until(lambda: queue.stats()["waiting"] == 1)
    second_events: list[StreamEvent] = []
    second = asyncio.create_task(collect(queue, "c2", "user:2", into=second_events))
    await until(lambda: positions(second_events) == [QueuePosition(2, 2)])
    cancel.set()
    cancelled = await asyncio.wait_for(first, 1)
    assert cancelled == [QueuePosition(1, 1), Usage(0, 0), Finish("cancelled")]
    await until(lambda: positions(second_events)[-1:] == [QueuePosition(1, 1)])
    assert queue.waiting() == {"user:2": 1}
    gate.set()
    await asyncio.gather(held, second)
    assert provider.started == ["held", "c2"]
    assert second_events[-1] == Finish("stop")


async def test_closing_or_cancelling_a_waiting_consumer_leaks_nothing() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider)
    held, gate = await start_held(queue, provider)
    stream = queue.stream(ask("closed"), key="user:1")
    assert await anext(stream) == QueuePosition(1, 1)
    await stream.aclose()
    task = asyncio.create_task(collect(queue, "task", "user:2"))
    await until(lambda: queue.stats()["waiting"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue.waiting() == {}
    gate.set()
    await held
    # Abandoned mid-answer too: the slot comes back.
    stream = queue.stream(ask("half"), key="user:3")
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
    assert queue.stats()["in_flight"] == 0
    text, usage, reason = await asyncio.wait_for(queue.complete(ask("later"), key="user:1"), 1)
    assert (text, usage, reason) == ("later-0 later-1 later-2 ", Usage(1, 3), "stop")
    assert provider.started == ["held", "half", "later"]


async def test_a_failing_generation_gives_its_slot_to_the_next() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider)
    failing = asyncio.create_task(queue.complete(ask("boom"), key="user:1"))
    await until(lambda: provider.started == ["boom"])
    after = asyncio.create_task(queue.complete(ask("after"), key="user:2"))
    with pytest.raises(GenerationFailed):
        await failing
    text, _, reason = await asyncio.wait_for(after, 1)
    assert text == "after-0 after-1 after-2 " and reason == "stop"
    assert queue.stats()["in_flight"] == 0 and queue.waiting() == {}
    # Only finished generations feed the average (5 s start, pulled down by one short run).
    assert 0 < queue.stats()["average_generation_s"] < 5


async def test_concurrency_admits_several_and_delegates_the_rest() -> None:
    provider = ScriptedProvider()
    queue = FairQueue(provider, concurrency=2)
    assert isinstance(queue, Provider)
    results = await asyncio.gather(*(collect(queue, f"r{i}", f"user:{i}") for i in range(3)))
    assert [len(positions(events)) for events in results] == [0, 0, 1]
    assert queue.capabilities() == Capabilities(context_length=1234)
    assert await queue.count_tokens("three small words") == 3
    health = await queue.health()
    assert health["provider"] == "scripted" and health["queue"]["in_flight"] == 0
    assert health["queue"]["concurrency"] == 2 and health["queue"]["waiting_per_key"] == {}
    with pytest.raises(ValueError):
        FairQueue(provider, concurrency=0)


async def test_real_local_provider_serves_two_users_in_turn() -> None:
    path = load_catalog().default_entry().path()
    assert path is not None and Path(path).is_file(), "the bundled SmolLM2 model must be installed"
    local = LocalProvider(path, context_length=1024, n_threads=2)
    queue = FairQueue(local)
    request = ChatRequest((ChatMessage("user", "Say hello in one short sentence."),), 12)
    try:
        first = asyncio.create_task(_stream_all(queue, request, "user:1"))
        await until(lambda: queue.stats()["in_flight"] == 1)
        second = asyncio.create_task(_stream_all(queue, request, "user:2"))
        one, two = await asyncio.wait_for(asyncio.gather(first, second), 60)
    finally:
        await local.close()
    assert not positions(one) and positions(two)[0] == QueuePosition(1, 1)
    for events in (one, two):
        assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
        assert isinstance(events[-1], Finish) and events[-1].reason in ("stop", "length")
    assert queue.stats()["in_flight"] == 0


async def _stream_all(queue: FairQueue, request: ChatRequest, key: str) -> list[StreamEvent]:
    return [event async for event in queue.stream(request, key=key)]
