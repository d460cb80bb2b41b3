"""The provider contract: what every model backend (local llama.cpp, remote servers) offers.

Requests are frozen dataclasses validated on construction, so an invalid request never reaches
a model. A stream yields ``TextDelta`` (and, for a model that calls tools natively, ``ToolCallDelta``)
events, then exactly one ``Usage`` and one ``Finish`` (a queued stream may first yield
``QueuePosition`` events while it waits; a fallback chain yields ``Fallback`` when it moves on).
Failures are raised as :class:`~engine.errors.EngineError` subclasses, never yielded.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from engine.errors import InvalidChatRequest

ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_TOKENS_LIMIT = 8192
FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]
TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call the model asked for: ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation.

    An assistant message may carry ``tool_calls``; a ``tool`` message answers one of them and
    names it in ``tool_call_id``.
    """

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidChatRequest(
                f"Unknown message role {self.role!r}; use one of {', '.join(sorted(ROLES))}.",
                role=self.role,
            )
        if not isinstance(self.content, str):
            raise InvalidChatRequest("Message content must be text.")
        if self.tool_calls and self.role != "assistant":
            raise InvalidChatRequest("Only an assistant message may carry tool calls.")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise InvalidChatRequest("A tool message, and only a tool message, needs tool_call_id.")


@dataclass(frozen=True)
class ToolDefinition:
    """A tool offered to the model: its name, what it does, and its JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise InvalidChatRequest(
                f"Tool name {self.name!r} is invalid: letters, digits, _ and -, up to 64, "
                "starting with a letter.",
                tool=self.name,
            )
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise InvalidChatRequest(
                f"Tool {self.name!r}: parameters must be a JSON schema of type object.",
                tool=self.name,
            )


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request: the messages and how to sample the answer."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int = 256
    temperature: float = 0.7
    stop: tuple[str, ...] = ()
    # Tools the model may call natively ("auto"), must call ("required") or not ("none").
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: Literal["auto", "required", "none"] = "auto"
    # Constrain the answer to JSON matching this schema (grammar-constrained where supported).
    json_schema: dict[str, Any] | None = None

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
        if not all(isinstance(t, ToolDefinition) for t in self.tools):
            raise InvalidChatRequest("Every tool must be a ToolDefinition.")
        if len({t.name for t in self.tools}) != len(self.tools):
            raise InvalidChatRequest("Tool names must be unique within a request.")
        if self.tool_choice not in ("auto", "required", "none"):
            raise InvalidChatRequest("tool_choice must be auto, required or none.")
        if self.tool_choice == "required" and not self.tools:
            raise InvalidChatRequest("tool_choice 'required' needs at least one tool.")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise InvalidChatRequest("json_schema must be a JSON schema object.")
        if self.json_schema is not None and self.tools:
            raise InvalidChatRequest(
                "A request constrains its output by json_schema or offers tools, not both."
            )


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a native tool call: the call at ``index`` gets its ``id`` and ``name`` in its
    first delta and its JSON ``arguments`` text in pieces. ``collect()`` joins them."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


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


@dataclass(frozen=True)
class Fallback:
    """A fallback chain moved from one (provider, model) to the next before any token, and why."""

    from_provider: str
    to_provider: str
    reason: str
    code: str


StreamEvent = TextDelta | ToolCallDelta | Usage | Finish | QueuePosition | Fallback


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
    text, _calls, usage, reason = await collect_with_tools(events)
    return text, usage, reason


async def collect_with_tools(
    events: AsyncIterator[StreamEvent],
) -> tuple[str, tuple[ToolCall, ...], Usage, str]:
    """Drain a stream into ``(text, tool calls, usage, finish reason)``, joining tool-call
    deltas by index."""
    parts: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    usage = Usage(0, 0)
    reason: str = "stop"
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = event.id or call["id"]
            call["name"] = event.name or call["name"]
            call["arguments"] += event.arguments
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            reason = event.reason
    tool_calls = tuple(
        ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"])
        for i, c in sorted(calls.items())
    )
    return "".join(parts), tool_calls, usage, reason
