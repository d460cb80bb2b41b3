"""A small real HTTP server that speaks Anthropic's Messages API (streaming SSE), answering
with the real local model through LocalProvider.

No Anthropic server exists offline, so this one stands in for it in the tests: it checks the
``x-api-key`` and ``anthropic-version`` headers, reads the Messages body (system prompt, content
blocks, tool_result blocks, tools, tool_choice), and streams message_start,
content_block_start/delta/stop (``text_delta``, or ``input_json_delta`` for a forced tool whose
arguments the model writes under that tool's JSON schema), message_delta with usage and
message_stop. It runs under uvicorn in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.providers import ChatMessage, ChatRequest, LocalProvider, TextDelta, Usage

MODEL = "claude-test-smollm2"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "cancelled": "end_turn"}


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
    )


def _chat_messages(body: dict[str, Any]) -> tuple[ChatMessage, ...]:
    messages: list[ChatMessage] = []
    if body.get("system"):
        messages.append(ChatMessage("system", str(body["system"])))
    for turn in body["messages"]:
        content = turn["content"]
        if isinstance(content, str):
            messages.append(ChatMessage(turn["role"], content))
            continue
        parts: list[str] = []
        for block in content:
            if block["type"] == "text":
                parts.append(block["text"])
            elif block["type"] == "tool_result":
                parts.append(f"Tool result ({block['tool_use_id']}): {block['content']}")
            elif block["type"] == "tool_use":
                parts.append(f"Called {block['name']} with {json.dumps(block['input'])}")
        messages.append(ChatMessage(turn["role"], "\n".join(parts)))
    return tuple(messages)


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") == "tool":
        return next((t for t in tools if t["name"] == choice["name"]), None)
    if choice.get("type") == "any" and tools:
        return dict(tools[0])
    return None


class MessagesServer:
    """The app plus its uvicorn server; ``requests`` records every body it was sent."""

    def __init__(self, local: LocalProvider, api_key: str, port: int) -> None:
        self.local = local
        self.api_key = api_key
        self.port = port
        self.requests: list[dict[str, Any]] = []
        app = Starlette(
            routes=[
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    def _refused(self, request: Request) -> Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        return None

    async def models(self, request: Request) -> Response:
        return self._refused(request) or JSONResponse(
            {"data": [{"id": MODEL, "type": "model", "display_name": "SmolLM2 test"}]}
        )

    async def count_tokens(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        text = "\n".join(m.content for m in _chat_messages(body))
        return JSONResponse({"input_tokens": await self.local.count_tokens(text)})

    async def messages(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        if not body.get("stream"):
            return _error(400, "invalid_request_error", "this test server only streams")
        tool = _forced_tool(body)
        chat = ChatRequest(
            _chat_messages(body),
            max_tokens=int(body["max_tokens"]),
            temperature=float(body.get("temperature", 1.0)),
            stop=tuple(body.get("stop_sequences") or ()),
            json_schema=tool["input_schema"] if tool else None,
        )
        return StreamingResponse(self._events(chat, tool), media_type="text/event-stream")

    async def _events(self, chat: ChatRequest, tool: dict[str, Any] | None) -> AsyncIterator[bytes]:
        prompt = "\n".join(m.content for m in chat.messages)
        yield _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_test",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "usage": {
                        "input_tokens": await self.local.count_tokens(prompt),
                        "output_tokens": 1,
                    },
                },
            },
        )
        if tool is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
        else:
            block = {"type": "tool_use", "id": "toolu_test1", "name": tool["name"], "input": {}}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        yield _sse("ping", {"type": "ping"})
        finish, output = "stop", 0
        async for event in self.local.stream(chat):
            if isinstance(event, TextDelta):
                delta = (
                    {"type": "text_delta", "text": event.text}
                    if tool is None
                    else {"type": "input_json_delta", "partial_json": event.text}
                )
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            elif isinstance(event, Usage):
                output = event.completion_tokens
            else:
                finish = getattr(event, "reason", finish)
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        stop_reason = "tool_use" if tool is not None else STOP_REASONS.get(finish, "end_turn")
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})
