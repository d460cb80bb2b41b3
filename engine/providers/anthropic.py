"""Anthropic's Messages API over HTTP (``POST {base_url}/v1/messages``, streaming).

Events read: ``message_start`` (input tokens), ``content_block_start`` (a text block, or a
``tool_use`` block with its id and name), ``content_block_delta`` (``text_delta`` text,
``input_json_delta`` tool arguments), ``message_delta`` (stop reason, output tokens),
``message_stop``, ``ping`` and ``error``.

Mapping from the engine's request: system messages join into the top-level ``system`` prompt;
an assistant message's tool calls become ``tool_use`` blocks; a ``tool`` message becomes a user
turn holding a ``tool_result`` block; consecutive turns of one role merge, as the API requires
alternation. The API has no JSON-schema response format, so ``json_schema`` is sent as one
forced tool whose input schema it is, and that tool's input streams back as the answer text.
"""

from __future__ import annotations

import asyncio
import json
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

API_VERSION = "2023-06-01"
JSON_TOOL = "json_answer"
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


class AnthropicProvider:
    """A :class:`~engine.providers.base.Provider` for one model behind the Messages API."""

    def __init__(
        self, config: EndpointConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream"}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        self.endpoint = RemoteEndpoint(config, headers, transport)
        self._count_available: bool | None = None

    @property
    def name(self) -> str:
        """The endpoint's configured name."""
        return self.config.name

    def capabilities(self) -> Capabilities:
        """Tools natively; JSON schema through one forced tool."""
        return Capabilities(
            context_length=self.config.context_length, tools=self.config.tools, json_schema=True
        )

    async def health(self) -> dict[str, Any]:
        """Whether ``GET /v1/models`` answers, and the circuit's state; never the key."""
        report: dict[str, Any] = {
            "provider": "anthropic",
            "endpoint": self.config.name,
            "model": self.config.model,
            "circuit": self.endpoint.breaker.state,
        }
        try:
            response = await self.endpoint.client.get("v1/models")
        except httpx.HTTPError as exc:
            return {**report, "up": False, "error": type(exc).__name__}
        return {**report, "up": response.is_success, "status": response.status_code}

    async def count_tokens(self, text: str) -> int:
        """``/v1/messages/count_tokens`` where the endpoint has it, otherwise an estimate."""
        if self._count_available is not False:
            body = {"model": self.config.model, "messages": [{"role": "user", "content": text}]}
            try:
                response = await self.endpoint.client.post("v1/messages/count_tokens", json=body)
                if response.is_success:
                    self._count_available = True
                    return int(response.json()["input_tokens"])
                self._count_available = False
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                self._count_available = False
        return estimate_tokens(text)

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        """Run :meth:`stream` to the end: ``(text, usage, finish reason)``."""
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer; see the module docstring for the event mapping."""
        response = await self.endpoint.open("POST", "v1/messages", self.request_body(request))
        reader = EventReader(self.endpoint, response, cancel)
        state = _MessageState(json_answer=request.json_schema is not None)
        async with aclosing(reader.events()) as events:
            async for sse in events:
                for event in state.feed(sse.event, sse.json(), self.config.name):
                    yield event
                if state.stopped:
                    break
        usage = Usage(state.input_tokens, state.output_tokens)
        if reader.cancelled:
            yield usage
            yield Finish("cancelled")
            return
        if not state.stopped:
            self.endpoint.record_stream_failure()
            raise ProviderProtocolError(
                f"Endpoint {self.config.name!r} ended its answer before message_stop.",
                endpoint=self.config.name,
            )
        yield usage
        reason = STOP_REASONS.get(state.stop_reason or "end_turn", "stop")
        if state.json_answer and reason == "tool_calls":
            reason = "stop"
        yield Finish(reason)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.endpoint.aclose()

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages API body for ``request``."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": request.max_tokens,
            "temperature": min(request.temperature, 1.0),
            "messages": _turns(request.messages),
            "stream": True,
        }
        if system:
            body["system"] = system
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            body["tool_choice"] = {"auto": {"type": "auto"}, "required": {"type": "any"}}.get(
                request.tool_choice, {"type": "none"}
            )
        if request.json_schema is not None:
            body["tools"] = [
                {
                    "name": JSON_TOOL,
                    "description": "Give the answer as JSON matching this schema.",
                    "input_schema": request.json_schema,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        return body


class _MessageState:
    """What has been seen of a streamed message so far."""

    def __init__(self, json_answer: bool) -> None:
        self.json_answer = json_answer
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False
        # content block index -> tool call index, for tool_use blocks.
        self.tool_blocks: dict[int, int] = {}

    def feed(self, kind: str, data: dict[str, Any], endpoint: str) -> list[StreamEvent]:
        kind = str(data.get("type", kind))
        if kind == "error":
            raise _stream_error(data.get("error"), endpoint)
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self.input_tokens = int(usage.get("input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            return self._block_start(data, endpoint)
        elif kind == "content_block_delta":
            return self._block_delta(data, endpoint)
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = data.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
        elif kind == "message_stop":
            self.stopped = True
        return []

    def _block_start(self, data: dict[str, Any], endpoint: str) -> list[StreamEvent]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            raise ProviderProtocolError(f"Endpoint {endpoint!r} sent a malformed content block.")
        if block.get("type") != "tool_use" or self.json_answer:
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        index = len(self.tool_blocks)
        self.tool_blocks[int(data.get("index", 0))] = index
        return [ToolCallDelta(index=index, id=block.get("id"), name=block.get("name"))]

    def _block_delta(self, data: dict[str, Any], endpoint: str) -> list[StreamEvent]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise ProviderProtocolError(f"Endpoint {endpoint!r} sent a malformed delta.")
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if delta.get("type") == "input_json_delta":
            partial = str(delta.get("partial_json") or "")
            if self.json_answer:
                return [TextDelta(partial)] if partial else []
            block = int(data.get("index", 0))
            if block not in self.tool_blocks:
                raise ProviderProtocolError(
                    f"Endpoint {endpoint!r} sent tool input for a block it never started."
                )
            return [ToolCallDelta(index=self.tool_blocks[block], arguments=partial)]
        return []


def _stream_error(error: Any, endpoint: str) -> EngineError:
    kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if kind == "rate_limit_error":
        return ProviderRateLimited(f"Endpoint {endpoint!r} is rate limiting: {message}")
    return ProviderUnavailable(
        f"Endpoint {endpoint!r} reported {kind or 'an error'} mid-answer: {message}",
        endpoint=endpoint,
    )


def _turns(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    """User/assistant turns with content blocks, consecutive same-role turns merged."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.content,
                }
            )
        elif message.content:
            blocks.append({"type": "text", "text": message.content})
        for call in message.tool_calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": _arguments(call.arguments),
                }
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        # The API wants an object; arguments the model garbled are passed on as text.
        return {"arguments": text}
