"""Context-window management: fit system prompt, tool schemas, history and the current turn
into the model's window with room for the answer.

Oldest whole turns go first (a turn = a user message and everything up to the next one, so a
tool result never loses the call it answers); what was dropped can be summarised by the model
into one note on the system prompt. The result never exceeds the window: if even the current
turn alone does not fit, :class:`~engine.errors.ContextOverflow` says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.errors import ContextOverflow
from engine.providers.base import ChatMessage

# Tokens a chat template adds around each message (role markers, separators).
PER_MESSAGE = 4
SUMMARY_PREFIX = "\n\nSummary of the earlier conversation: "
# Tokens set aside for a summary of dropped turns, and the least worth asking for.
SUMMARY_ROOM = 96
MIN_SUMMARY = 12

Counter = Callable[[str], Awaitable[int]]
Summariser = Callable[[list[ChatMessage], int], Awaitable[str]]


@dataclass(frozen=True)
class Fit:
    """The messages to send and what fitting them did."""

    messages: list[ChatMessage]
    prompt_tokens: int
    dropped: int
    summarised: bool


class TokenBudget:
    """Counts message tokens with the provider's tokenizer (cached) and fits conversations."""

    def __init__(self, count: Counter, window: int) -> None:
        self.count = count
        self.window = window
        self._cache: dict[tuple[str, str, str], int] = {}

    async def cost(self, message: ChatMessage) -> int:
        """Tokens ``message`` takes in a prompt."""
        calls = "".join(c.name + c.arguments for c in message.tool_calls)
        key = (message.role, message.content, calls)
        if key not in self._cache:
            self._cache[key] = await self.count(message.content + calls) + PER_MESSAGE
        return self._cache[key]

    async def total(self, messages: list[ChatMessage]) -> int:
        """Tokens of a whole prompt."""
        return sum([await self.cost(m) for m in messages])

    async def fit(
        self,
        system: ChatMessage,
        history: list[ChatMessage],
        turn: list[ChatMessage],
        reserve: int,
        summarise: Summariser | None = None,
    ) -> Fit:
        """``system + history + turn``, oldest history turns dropped (and summarised) as needed
        so the prompt plus ``reserve`` answer tokens fits the window."""
        fixed = await self.cost(system) + await self.total(turn)
        if fixed + reserve > self.window:
            raise ContextOverflow(fixed, reserve, self.window)
        units = _turns(history)
        costs = [await self.total(u) for u in units]
        if fixed + sum(costs) + reserve <= self.window:
            return Fit([system, *history, *turn], fixed + sum(costs), 0, False)
        # Something must go: leave room for a summary of it when there is a summariser.
        room = min(SUMMARY_ROOM, max(0, (self.window - fixed - reserve) // 2)) if summarise else 0
        kept = len(units)
        while kept and fixed + sum(costs[len(units) - kept :]) + reserve + room > self.window:
            kept -= 1
        dropped_units = units[: len(units) - kept]
        kept_messages = [m for u in units[len(units) - kept :] for m in u]
        used = fixed + sum(costs[len(units) - kept :])
        dropped = sum(len(u) for u in dropped_units)
        plain = Fit([system, *kept_messages, *turn], used, dropped, False)
        budget = room - await self.count(SUMMARY_PREFIX) - PER_MESSAGE
        if summarise is None or budget < MIN_SUMMARY:
            return plain
        summary = await summarise([m for u in dropped_units for m in u], budget)
        note = ChatMessage("system", system.content + SUMMARY_PREFIX + summary)
        added = await self.cost(note) - await self.cost(system)
        if added > room:
            return plain
        return Fit([note, *kept_messages, *turn], used + added, dropped, True)


def _turns(history: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Split history into turns, each starting at a user message."""
    units: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not units:
            units.append([message])
        else:
            units[-1].append(message)
    return units
