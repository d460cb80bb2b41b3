"""A fair, bounded queue in front of one provider: users take turns at the model.

:class:`FairQueue` is itself a :class:`~engine.providers.base.Provider`. It admits at most
``concurrency`` generations at a time; the rest wait, grouped by a caller-chosen ``key`` (a
user id, say), and are served one key at a time in rotation: the key served longest ago (or
never) goes first, so one user's ten queued requests cannot starve another user's single one.

A waiting stream yields :class:`~engine.providers.base.QueuePosition` events whenever its place
changes (position 1 is next). The number of waiting requests is bounded, in all and per key;
past a bound :class:`~engine.errors.QueueFull` is raised at once with a ``retry_after`` estimate
from the queue length and the average generation time the queue measures.

A waiting request that is cancelled (its ``cancel`` event set, its task cancelled or its
generator closed) leaves the queue at once; an admitted one always gives its slot back.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from engine.errors import QueueFull
from engine.providers.base import (
    Capabilities,
    ChatRequest,
    Finish,
    Provider,
    QueuePosition,
    StreamEvent,
    Usage,
    collect,
)

DEFAULT_KEY = "anonymous"
# The generation time assumed before any generation was measured.
INITIAL_GENERATION_S = 5.0
# Weight of the newest measurement in the moving average of generation times.
AVERAGE_WEIGHT = 0.2


@dataclass(eq=False)
class _Ticket:
    """One request's place in the queue."""

    key: str
    seq: int
    position: int = 0
    granted: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class FairQueue:
    """A :class:`~engine.providers.base.Provider` that queues requests fairly for ``provider``."""

    def __init__(
        self,
        provider: Provider,
        concurrency: int = 1,
        max_waiting: int = 32,
        max_per_key: int | None = 8,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_waiting < 0 or (max_per_key is not None and max_per_key < 1):
            raise ValueError("max_waiting must be >= 0 and max_per_key >= 1 (or None)")
        self.provider = provider
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self.max_per_key = max_per_key
        self.average_generation_s = INITIAL_GENERATION_S
        self._waiting: dict[str, list[_Ticket]] = {}
        self._in_flight: dict[str, int] = {}
        # Grant number of each key's latest admission; kept while the key waits or runs.
        self._last_served: dict[str, int] = {}
        self._seq = itertools.count()
        self._grants = itertools.count()

    # --- Provider --------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The wrapped provider's capabilities."""
        return self.provider.capabilities()

    async def count_tokens(self, text: str) -> int:
        """Counted by the wrapped provider (not queued: counting is short)."""
        return await self.provider.count_tokens(text)

    async def health(self) -> dict[str, Any]:
        """The wrapped provider's health report plus the queue's :meth:`stats`."""
        return {**await self.provider.health(), "queue": self.stats()}

    async def complete(
        self, request: ChatRequest, key: str = DEFAULT_KEY
    ) -> tuple[str, Usage, str]:
        """Wait for a turn, then generate a whole answer: ``(text, usage, finish reason)``."""
        return await collect(self.stream(request, key=key))

    async def stream(
        self,
        request: ChatRequest,
        cancel: asyncio.Event | None = None,
        key: str = DEFAULT_KEY,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Wait for a turn (yielding ``QueuePosition``s), then stream the provider's answer.

        Raises :class:`~engine.errors.QueueFull` before yielding anything when the queue is
        full. A request cancelled by ``cancel`` while it waits ends with ``Usage(0, 0)`` and
        ``Finish("cancelled")``; once admitted, ``cancel`` is the provider's to honour.
        """
        ticket = self._admit_or_enqueue(key)
        watcher = None
        try:
            if not ticket.granted:
                if cancel is not None:
                    watcher = asyncio.create_task(_forward(cancel, ticket.wake))
                reported = 0
                while not ticket.granted:
                    if cancel is not None and cancel.is_set():
                        self._leave(ticket)
                        yield Usage(0, 0)
                        yield Finish("cancelled")
                        return
                    if ticket.position != reported:
                        reported = ticket.position
                        yield QueuePosition(reported, self._waiting_count())
                        continue
                    ticket.wake.clear()
                    await ticket.wake.wait()
                _stop_watcher(watcher)
                watcher = None
            started = time.monotonic()
            inner = self.provider.stream(request, cancel)
            try:
                async for event in inner:
                    if isinstance(event, Finish) and event.reason != "cancelled":
                        self._record(time.monotonic() - started)
                    yield event
            finally:
                if isinstance(inner, AsyncGenerator):
                    await inner.aclose()
        finally:
            _stop_watcher(watcher)
            self._leave(ticket)

    # --- health ----------------------------------------------------------------------------

    def waiting(self) -> dict[str, int]:
        """How many requests wait, per key."""
        return {key: len(tickets) for key, tickets in self._waiting.items()}

    def stats(self) -> dict[str, Any]:
        """Waiting requests (in all and per key), generations in flight, average duration."""
        return {
            "waiting": self._waiting_count(),
            "waiting_per_key": self.waiting(),
            "in_flight": sum(self._in_flight.values()),
            "concurrency": self.concurrency,
            "max_waiting": self.max_waiting,
            "average_generation_s": round(self.average_generation_s, 3),
        }

    def retry_after(self) -> int:
        """Seconds until a new request would likely be admitted (at least 1)."""
        ahead = self._waiting_count() + sum(self._in_flight.values())
        return max(1, math.ceil(ahead / self.concurrency * self.average_generation_s))

    # --- bookkeeping -----------------------------------------------------------------------

    def _waiting_count(self) -> int:
        return sum(len(tickets) for tickets in self._waiting.values())

    def _admit_or_enqueue(self, key: str) -> _Ticket:
        """A ticket, granted at once when a slot is free and nobody waits, else queued."""
        ticket = _Ticket(key, next(self._seq))
        if not self._waiting and sum(self._in_flight.values()) < self.concurrency:
            self._grant(ticket)
            return ticket
        mine = self._waiting.get(key, [])
        if self._waiting_count() >= self.max_waiting:
            raise QueueFull(
                f"{self._waiting_count()} requests are already waiting for the model.",
                retry_after=self.retry_after(),
                waiting=self._waiting_count(),
            )
        if self.max_per_key is not None and len(mine) >= self.max_per_key:
            raise QueueFull(
                f"You already have {len(mine)} requests waiting for the model.",
                retry_after=self.retry_after(),
                waiting=self._waiting_count(),
            )
        self._waiting.setdefault(key, []).append(ticket)
        self._reposition()
        return ticket

    def _grant(self, ticket: _Ticket) -> None:
        ticket.granted = True
        self._in_flight[ticket.key] = self._in_flight.get(ticket.key, 0) + 1
        self._last_served[ticket.key] = next(self._grants)
        ticket.wake.set()

    def _leave(self, ticket: _Ticket) -> None:
        """Give back ``ticket``'s slot, or its place in the queue; safe to call twice."""
        if ticket.granted:
            ticket.granted = False
            left = self._in_flight[ticket.key] - 1
            if left:
                self._in_flight[ticket.key] = left
            else:
                del self._in_flight[ticket.key]
            self._dispatch()
            return
        tickets = self._waiting.get(ticket.key)
        if tickets is not None and ticket in tickets:
            tickets.remove(ticket)
            if not tickets:
                del self._waiting[ticket.key]
            self._forget_idle(ticket.key)
            self._reposition()

    def _forget_idle(self, key: str) -> None:
        if key not in self._waiting and key not in self._in_flight:
            self._last_served.pop(key, None)

    def _rotation(self) -> list[str]:
        """Waiting keys in serving order: served longest ago (or never) first."""
        return sorted(
            self._waiting,
            key=lambda k: (self._last_served.get(k, -1), self._waiting[k][0].seq),
        )

    def _dispatch(self) -> None:
        """Admit waiting requests, key by key in rotation, while slots are free."""
        while self._waiting and sum(self._in_flight.values()) < self.concurrency:
            key = self._rotation()[0]
            tickets = self._waiting[key]
            ticket = tickets.pop(0)
            if not tickets:
                del self._waiting[key]
            self._grant(ticket)
        for key in list(self._last_served):
            self._forget_idle(key)
        self._reposition()

    def _reposition(self) -> None:
        """Renumber the waiting requests in the order they would be served; wake the moved."""
        order = self._rotation()
        rounds = max((len(self._waiting[k]) for k in order), default=0)
        position = 0
        for depth in range(rounds):
            for key in order:
                tickets = self._waiting[key]
                if depth < len(tickets):
                    position += 1
                    ticket = tickets[depth]
                    if ticket.position != position:
                        ticket.position = position
                        ticket.wake.set()

    def _record(self, seconds: float) -> None:
        self.average_generation_s += AVERAGE_WEIGHT * (seconds - self.average_generation_s)


async def _forward(cancel: asyncio.Event, wake: asyncio.Event) -> None:
    """Wake a waiting request when its cancel event is set."""
    await cancel.wait()
    wake.set()


def _stop_watcher(watcher: asyncio.Task[None] | None) -> None:
    if watcher is not None:
        watcher.cancel()
