"""OpenAI-compatible chat completions over HTTP: vLLM, Ollama's /v1, LM Studio, llama.cpp's
servers, Azure-style deployments and OpenAI itself.

Streams ``POST {base_url}/chat/completions`` with ``stream_options.include_usage``. Text deltas
become ``TextDelta``; ``delta.tool_calls`` pieces become ``ToolCallDelta`` (index, then id and
name once, then argument text); the usage chunk becomes ``Usage``. Servers that send no usage
(llama-cpp-python's server does not) get an estimate: the prompt by
:func:`~engine.providers.sse_reader.estimate_tokens`, the completion as the number of content
chunks (one token each on the servers we know).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx

from engine.errors import (
    EngineError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from engine.providers.base import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    collect,
)
from engine.providers.remote import EndpointConfig, RemoteEndpoint
from engine.providers.sse_reader import EventReader, estimate_tokens

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


class OpenAICompatibleProvider:
    """A :class:`~engine.providers.base.Provider` for one model on an OpenAI-compatible server."""

    def __init__(
        self, config: EndpointConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        headers = {"accept": "text/event-stream"}
        if config.api_key:
            if config.auth_header == "api-key":
                headers["api-key"] = config.api_key
            else:
                headers["authorization"] = f"Bearer {config.api_key}"
        self.endpoint = RemoteEndpoint(config, headers, transport)
        # None until tried: whether the server offers llama-cpp-python's tokenize endpoint.
        self._tokenize_available: bool | None = None

    @property
    def name(self) -> str:
        """The endpoint's configured name."""
        return self.config.name

    def capabilities(self) -> Capabilities:
        """From the endpoint's configuration (filled in by the capability probe)."""
        return Capabilities(
            context_length=self.config.context_length,
            tools=self.config.tools,
            json_schema=True,
        )

    async def health(self) -> dict[str, Any]:
        """Whether ``GET models`` answers, and the circuit's state; never the key."""
        report: dict[str, Any] = {
            "provider": "openai_compatible",
            "endpoint": self.config.name,
            "model": self.config.model,
            "circuit": self.endpoint.breaker.state,
        }
        try:
            response = await self.endpoint.client.get("models")
        except httpx.HTTPError as exc:
            return {**report, "up": False, "error": type(exc).__name__}
        return {**report, "up": response.is_success, "status": response.status_code}

    async def count_tokens(self, text: str) -> int:
        """The server's own count where it has llama-cpp-python's ``/extras/tokenize/count``,
        otherwise an estimate (about four characters a token)."""
        if self._tokenize_available is not False:
            root = self.config.base_url.rstrip("/").removesuffix("/v1")
            try:
                response = await self.endpoint.client.post(
                    f"{root}/extras/tokenize/count",
                    json={"input": text, "model": self.config.model},
                )
                if response.is_success:
                    self._tokenize_available = True
                    return int(response.json()["count"])
                self._tokenize_available = False
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                self._tokenize_available = False
        return estimate_tokens(text)

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        """Run :meth:`stream` to the end: ``(text, usage, finish reason)``."""
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer; see the module docstring for how chunks map to events."""
        response = await self.endpoint.open("POST", "chat/completions", self.request_body(request))
        reader = EventReader(self.endpoint, response, cancel)
        chunks = _ChunkState()
        done = False
        async with aclosing(reader.events()) as events:
            async for sse in events:
                if sse.data.strip() == "[DONE]":
                    done = True
                    break
                for event in chunks.feed(sse.json(), self.config.name):
                    yield event
        if reader.cancelled:
            yield chunks.usage(request)
            yield Finish("cancelled")
            return
        if not done and chunks.finish is None:
            self.endpoint.record_stream_failure()
            raise ProviderProtocolError(
                f"Endpoint {self.config.name!r} ended its answer before finishing it.",
                endpoint=self.config.name,
            )
        yield chunks.usage(request)
        yield Finish(FINISH_REASONS.get(chunks.finish or "stop", "stop"))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.endpoint.aclose()

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [_wire_message(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
            body["tool_choice"] = request.tool_choice
            if request.tool_choice == "required" and len(request.tools) == 1:
                # Naming the one tool means the same and is what llama.cpp's servers
                # understand (they constrain the output to its arguments by grammar).
                body["tool_choice"] = {
                    "type": "function",
                    "function": {"name": request.tools[0].name},
                }
        if request.json_schema is not None:
            if self.config.json_mode == "json_object":
                body["response_format"] = {"type": "json_object", "schema": request.json_schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": request.json_schema},
                }
        return body


class _ChunkState:
    """What has been seen of a streamed answer so far."""

    def __init__(self) -> None:
        self.pieces = 0
        self.finish: str | None = None
        self.reported: Usage | None = None

    def feed(self, chunk: dict[str, Any], endpoint: str) -> list[StreamEvent]:
        if "error" in chunk:
            raise _stream_error(chunk["error"], endpoint)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.reported = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise ProviderProtocolError(f"Endpoint {endpoint!r} sent choices that are not a list.")
        events: list[StreamEvent] = []
        for choice in choices[:1]:
            delta = choice.get("delta") or {} if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise ProviderProtocolError(f"Endpoint {endpoint!r} sent a malformed delta.")
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.pieces += 1
                events.append(TextDelta(content))
            for call in delta.get("tool_calls") or []:
                events.append(_tool_delta(call, endpoint))
                self.pieces += 1
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        return events

    def usage(self, request: ChatRequest) -> Usage:
        if self.reported is not None:
            return self.reported
        prompt = sum(estimate_tokens(m.content) + 4 for m in request.messages)
        return Usage(prompt, self.pieces)


def _tool_delta(call: Any, endpoint: str) -> ToolCallDelta:
    if not isinstance(call, dict):
        raise ProviderProtocolError(f"Endpoint {endpoint!r} sent a malformed tool call.")
    function = call.get("function") or {}
    return ToolCallDelta(
        index=int(call.get("index", 0)),
        id=call.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )


def _stream_error(error: Any, endpoint: str) -> EngineError:
    """An ``{"error": ...}`` chunk mid-stream as an engine error."""
    message = error.get("message", "") if isinstance(error, dict) else str(error)
    kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    if "rate" in kind:
        return ProviderRateLimited(f"Endpoint {endpoint!r} is rate limiting: {message}")
    return ProviderUnavailable(
        f"Endpoint {endpoint!r} reported an error mid-answer: {message}", endpoint=endpoint
    )


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire
