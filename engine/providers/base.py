"""The provider contract: what every model backend (local llama.cpp, remote servers) offers.

Requests are frozen dataclasses validated on construction, so an invalid request never reaches
a model. A stream yields ``TextDelta`` events, then exactly one ``Usage`` and one ``Finish``
(a queued stream may first yield ``QueuePosition`` events while it waits).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from engine.errors import InvalidChatRequest

ROLES = frozenset({"system", "user", "assistant"})
MAX_TOKENS_LIMIT = 8192
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidChatRequest(
                f"Unknown message role {self.role!r}; use one of {', '.join(sorted(ROLES))}.",
                role=self.role,
            )
        if not isinstance(self.content, str):
            raise InvalidChatRequest("Message content must be text.")


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request: the messages and how to sample the answer."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int = 256
    temperature: float = 0.7
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.messages:
            raise InvalidChatRequest("A chat request needs at least one message.")
        if not all(isinstance(m, ChatMessage) for m in self.messages):
            raise InvalidChatRequest("Every message must be a ChatMessage.")
        # bool is an int subclass; True as max_tokens is a caller bug, not a length.
        if (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT
        ):
            raise InvalidChatRequest(
                f"max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}.",
                max_tokens=str(self.max_tokens),
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidChatRequest("temperature must be between 0 and 2.")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidChatRequest("stop sequences must be non-empty strings.")


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation (what credits are settled on)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Finish:
    """The end of a stream and why it ended."""

    reason: FinishReason


@dataclass(frozen=True)
class QueuePosition:
    """Sent while a request waits in a queue: its place (1 = next) and how many wait in all.

    Only a queue in front of a provider (:class:`~engine.providers.queue.FairQueue`) yields
    these, before any ``TextDelta``; a bare provider never does.
    """

    position: int
    waiting: int


StreamEvent = TextDelta | Usage | Finish | QueuePosition


@dataclass(frozen=True)
class Capabilities:
    """What a provider's model can do."""

    context_length: int
    streaming: bool = True
    tools: bool = False
    json_schema: bool = False
    embeddings: bool = False
    vision: bool = False


@runtime_checkable
class Provider(Protocol):
    """A model backend. Implementations never block the event loop."""

    def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Generate an answer as events: text deltas, then ``Usage``, then ``Finish``.

        Implementations are ``async def`` generators; declared without ``async`` here because
        that is how a Protocol types an async generator method.
        """
        ...

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        """Generate a whole answer: ``(text, usage, finish reason)``."""
        ...

    async def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this provider's model."""
        ...

    def capabilities(self) -> Capabilities:
        """What the model can do."""
        ...

    async def health(self) -> dict[str, Any]:
        """A small status report for the health page."""
        ...


async def collect(events: AsyncIterator[StreamEvent]) -> tuple[str, Usage, str]:
    """Drain a stream into ``(text, usage, finish reason)`` — what ``complete()`` returns."""
    parts: list[str] = []
    usage = Usage(0, 0)
    reason: str = "stop"
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            reason = event.reason
    return "".join(parts), usage, reason
