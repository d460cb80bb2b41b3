"""A deterministic model: answers from a script instead of weights.

It is a real :class:`~engine.providers.base.Provider` (streams the same events, counts tokens,
honours cancellation), used to test the run loop's logic step by step and to measure the
engine's own overhead with a zero-latency model (bench/engine.py). Each call to :meth:`stream`
takes the next entry of the script: a string (text, streamed word by word), a
:class:`ScriptedToolCalls` (native tool calls), an exception instance (raised), or a callable
that receives the request and returns one of those.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import ContextOverflow, GenerationFailed
from engine.providers.base import (
    Capabilities,
    ChatRequest,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    collect,
)

WORD = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class ScriptedToolCalls:
    """A response that calls tools natively (several calls = parallel calls)."""

    calls: tuple[ToolCall, ...]
    text: str = ""


ScriptEntry = str | ScriptedToolCalls | BaseException | Callable[[ChatRequest], Any]


class ScriptedProvider:
    """Plays a script of responses; records every request it was sent."""

    def __init__(
        self,
        script: list[ScriptEntry],
        *,
        native_tools: bool = False,
        context_length: int = 4096,
        delay_s: float = 0.0,
    ) -> None:
        self.script = list(script)
        self.native_tools = native_tools
        self.context_length = context_length
        self.delay_s = delay_s
        self.requests: list[ChatRequest] = []

    def capabilities(self) -> Capabilities:
        """Native tools only when asked for; JSON-schema output always (it is obeyed by script)."""
        return Capabilities(
            context_length=self.context_length, tools=self.native_tools, json_schema=True
        )

    async def health(self) -> dict[str, Any]:
        return {"provider": "scripted", "up": True, "remaining": len(self.script)}

    async def count_tokens(self, text: str) -> int:
        """One token per word: deterministic and easy to reason about in tests."""
        return len(text.split())

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        self.requests.append(request)
        prompt = sum(len(m.content.split()) + 4 for m in request.messages)
        if prompt + request.max_tokens > self.context_length:
            raise ContextOverflow(prompt, request.max_tokens, self.context_length)
        if not self.script:
            raise GenerationFailed("The script has no response left for this request.")
        entry: Any = self.script.pop(0)
        if callable(entry) and not isinstance(entry, BaseException):
            entry = entry(request)
        if isinstance(entry, BaseException):
            raise entry
        completion = 0
        if isinstance(entry, ScriptedToolCalls):
            if entry.text:
                yield TextDelta(entry.text)
            for index, call in enumerate(entry.calls):
                yield ToolCallDelta(index, id=call.id, name=call.name)
                yield ToolCallDelta(index, arguments=call.arguments)
                completion += len(call.arguments.split()) + 2
            yield Usage(prompt, completion)
            yield Finish("tool_calls")
            return
        for word in WORD.findall(str(entry))[: request.max_tokens]:
            if cancel is not None and cancel.is_set():
                yield Usage(prompt, completion)
                yield Finish("cancelled")
                return
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            completion += 1
            yield TextDelta(word)
        yield Usage(prompt, completion)
        yield Finish("length" if completion >= request.max_tokens else "stop")
