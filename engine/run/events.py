"""A run's event log: every event numbered, kept for the run's life, readable from any point.

A client that loses its connection reconnects with the last event id it saw and gets the rest
(server-sent events' ``Last-Event-ID``); several clients may follow one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from engine.hooks import RunEvent

# The events that end a run's stream.
TERMINAL = "done"


class EventLog:
    """Append-only, numbered from 1; followers wait for new events."""

    def __init__(self, observer: Callable[[RunEvent], Awaitable[None]] | None = None) -> None:
        self.events: list[RunEvent] = []
        self._changed = asyncio.Condition()
        self._observer = observer

    @property
    def closed(self) -> bool:
        """Whether the terminal ``done`` event was emitted."""
        return bool(self.events) and self.events[-1].kind == TERMINAL

    async def emit(self, kind: str, **data: Any) -> RunEvent:
        """Append an event (and show it to the observer, e.g. the hooks' ``on_run_event``)."""
        if self.closed:
            raise RuntimeError("the run has ended; no event may follow 'done'")
        event = RunEvent(kind, data, seq=len(self.events) + 1)
        self.events.append(event)
        if self._observer is not None:
            await self._observer(event)
        async with self._changed:
            self._changed.notify_all()
        return event

    async def wait_beyond(self, position: int) -> None:
        """Return once there is an event with ``seq > position`` (or the log is closed)."""
        async with self._changed:
            while len(self.events) <= position and not self.closed:
                await self._changed.wait()

    async def follow(self, after: int = 0) -> AsyncGenerator[RunEvent, None]:
        """Events with ``seq > after``, waiting for new ones until ``done``."""
        position = max(0, after)
        while True:
            while position < len(self.events):
                event = self.events[position]
                position += 1
                yield event
                if event.kind == TERMINAL:
                    return
            if self.closed:
                return
            async with self._changed:
                if position >= len(self.events):
                    await self._changed.wait()
