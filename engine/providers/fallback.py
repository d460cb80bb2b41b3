"""A fallback chain: an ordered list of providers tried in turn, itself a Provider.

A retryable failure (:attr:`~engine.errors.EngineError.retryable`: unreachable, timed out, rate
limited, circuit open, crashed worker) *before the first token* moves the request to the next
provider and yields a :class:`~engine.providers.base.Fallback` event that says why. Once a text
or tool-call delta has streamed, a failure raises
:class:`~engine.errors.ProviderFailedMidStream`: two models' output is never spliced. A
non-retryable failure (bad credentials, a rejected request, a prompt over the context) is
raised as is: the next provider would not be better placed to explain it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from engine.errors import EngineError, InvalidChatRequest, ProviderFailedMidStream
from engine.providers.base import (
    Capabilities,
    ChatRequest,
    Fallback,
    Provider,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    collect,
)


class FallbackChain:
    """Providers tried in order; ``providers`` pairs a display name with each provider."""

    def __init__(self, providers: Sequence[tuple[str, Provider]]) -> None:
        if not providers:
            raise InvalidChatRequest("A fallback chain needs at least one provider.")
        self.providers = list(providers)

    def capabilities(self) -> Capabilities:
        """What every provider of the chain can do, so a fallback never loses a capability."""
        caps = [p.capabilities() for _, p in self.providers]
        return Capabilities(
            context_length=min(c.context_length for c in caps),
            streaming=all(c.streaming for c in caps),
            tools=all(c.tools for c in caps),
            json_schema=all(c.json_schema for c in caps),
            embeddings=all(c.embeddings for c in caps),
            vision=all(c.vision for c in caps),
        )

    async def health(self) -> dict[str, Any]:
        """Every member's health, in chain order."""
        members = [{"name": name, **await p.health()} for name, p in self.providers]
        return {"provider": "fallback", "up": any(m.get("up") for m in members), "chain": members}

    async def count_tokens(self, text: str) -> int:
        """The first provider's count (the one that normally answers)."""
        return await self.providers[0][1].count_tokens(text)

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        """Run :meth:`stream` to the end: ``(text, usage, finish reason)``."""
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream from the first provider that gets a token out; see the module docstring."""
        last = len(self.providers) - 1
        for position, (name, provider) in enumerate(self.providers):
            started = False
            try:
                stream = provider.stream(request, cancel)
                try:
                    async for event in stream:
                        if isinstance(event, TextDelta | ToolCallDelta):
                            started = True
                        yield event
                finally:
                    # Close the member's stream now (its connection, its worker turn), not
                    # whenever it is collected; the protocol types it as a plain iterator.
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
                return
            except EngineError as exc:
                if started:
                    raise ProviderFailedMidStream(
                        f"{name} failed part-way through its answer ({exc.code}: {exc.message}); "
                        "the partial answer is not continued by another model.",
                        provider=name,
                        cause=exc.code,
                    ) from exc
                if not exc.retryable or position == last:
                    raise
                yield Fallback(
                    from_provider=name,
                    to_provider=self.providers[position + 1][0],
                    reason=exc.message,
                    code=exc.code,
                )
