"""MCP client: tools from Model Context Protocol servers, as engine tools.

An administrator registers a server — a stdio command (launched **inside the sandbox** by the
``launcher`` the appliance passes, never bare) or a streamable-HTTP URL on the LAN. Enclave
connects, lists its tools, and agents may enable them under the name
``<server>__<tool>``. One connection per server is kept by a dedicated task (the SDK's
transports must be entered and left in one task); calls go through it one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import structlog

from engine.errors import McpServerFailed
from engine.tools.base import ToolContext, ToolOutput, ToolSpec

log = structlog.get_logger(__name__)

SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,23}$")
SEPARATOR = "__"
MAX_CONTENT = 20_000
# (argv, env) of a stdio server → (argv, env) of the same server confined by the sandbox.
Launcher = Callable[[list[str], dict[str, str]], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one MCP server."""

    name: str
    transport: Literal["stdio", "http"]
    command: tuple[str, ...] = ()
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not SERVER_NAME.match(self.name):
            raise McpServerFailed(
                "An MCP server name is 1-24 lower-case letters, digits, _ or -, starting with "
                "a letter.",
                server=self.name,
            )
        if self.transport == "stdio" and not self.command:
            raise McpServerFailed("A stdio MCP server needs a command.", server=self.name)
        if self.transport == "http" and _scheme(self.url) not in ("http", "https"):
            raise McpServerFailed("An HTTP MCP server needs an http(s) URL.", server=self.name)


def _scheme(url: str | None) -> str | None:
    try:
        return httpx.URL(url).scheme if url else None
    except httpx.InvalidURL:
        return None


def tool_name(server: str, tool: str) -> str:
    """The name agents know an MCP tool by (letters, digits, _ and -; at most 64)."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", tool)
    return f"{server}{SEPARATOR}{clean}"[:64]


class McpClient:
    """One live connection to an MCP server."""

    def __init__(self, spec: McpServerSpec, launcher: Launcher | None = None) -> None:
        if spec.transport == "stdio" and launcher is None:
            # No silent fallback to running a server unconfined.
            raise McpServerFailed(
                "stdio MCP servers run only inside the sandbox, and no sandbox launcher was given.",
                server=spec.name,
            )
        self.spec = spec
        self.launcher = launcher
        self._requests: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any]] | None] = (
            asyncio.Queue()
        )
        self._ready: asyncio.Future[list[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def tools(self) -> list[tuple[ToolSpec, str]]:
        """Connect if needed and list the server's tools: each as a spec (named
        ``<server>__<tool>``) and the server's own name for it."""
        listed = await self._connect()
        specs = []
        for tool in listed:
            schema = dict(tool.input_schema or {"type": "object", "properties": {}})
            schema.pop("title", None)
            schema.setdefault("type", "object")
            specs.append(
                (
                    ToolSpec(
                        name=tool_name(self.spec.name, tool.name),
                        description=(tool.description or tool.name)[:1000],
                        parameters=schema,
                        runs_code=True,
                    ),
                    tool.name,
                )
            )
        return specs

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolOutput:
        """Call ``tool`` (the server's own name for it)."""
        await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        await self._requests.put((tool, arguments, future))
        try:
            result = await asyncio.wait_for(future, self.spec.timeout_s)
        except TimeoutError:
            raise McpServerFailed(
                f"MCP server {self.spec.name!r} did not answer {tool!r} within "
                f"{self.spec.timeout_s:g} s.",
                server=self.spec.name,
            ) from None
        texts = [getattr(block, "text", "") for block in result.content]
        content = "\n".join(t for t in texts if t) or str(result.structured_content or "")
        return ToolOutput(
            content[:MAX_CONTENT],
            is_error=bool(result.is_error),
            data={"structured": result.structured_content},
            audit={"mcp_server": self.spec.name, "transport": self.spec.transport},
        )

    async def close(self) -> None:
        """End the connection (and the server process of a stdio server)."""
        if self._task is None:
            return
        await self._requests.put(None)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        if not self._task.done():
            self._task.cancel()
        self._task = None
        self._ready = None

    # --- the connection task -----------------------------------------------------------------

    async def _connect(self) -> list[Any]:
        async with self._lock:
            if self._task is None or self._task.done():
                self._ready = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._hold(), name=f"mcp-{self.spec.name}")
            assert self._ready is not None
            ready = self._ready
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.spec.timeout_s)
        except TimeoutError:
            await self.close()
            raise McpServerFailed(
                f"MCP server {self.spec.name!r} did not start within {self.spec.timeout_s:g} s.",
                server=self.spec.name,
            ) from None

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        # The MCP SDK is imported on first use: it is a sixth of the appliance's import time,
        # which every start (and every CLI command) would pay otherwise.
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client

        spec = self.spec
        if spec.transport == "http":
            assert spec.url is not None
            async with streamable_http_client(spec.url) as streams:
                yield streams[0], streams[1]
            return
        assert self.launcher is not None
        argv, env = self.launcher(list(spec.command), dict(spec.env))
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
        async with stdio_client(params) as (read, write):
            yield read, write

    async def _hold(self) -> None:
        from mcp import ClientSession

        ready = self._ready
        assert ready is not None
        try:
            async with (
                self._transport() as (read, write),
                ClientSession(read, write, read_timeout_seconds=self.spec.timeout_s) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                ready.set_result(list(listed.tools))
                while (request := await self._requests.get()) is not None:
                    name, arguments, future = request
                    try:
                        outcome = await session.call_tool(name, arguments)
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(
                                McpServerFailed(
                                    f"MCP server {self.spec.name!r} failed on {name!r}: {exc}",
                                    server=self.spec.name,
                                )
                            )
                        continue
                    if not future.done():
                        future.set_result(outcome)
        except Exception as exc:
            log.warning("mcp.connection_failed", server=self.spec.name, error=str(exc))
            failure = McpServerFailed(
                f"MCP server {self.spec.name!r} is not reachable ({exc.__class__.__name__}: "
                f"{exc}).",
                server=self.spec.name,
            )
            if not ready.done():
                ready.set_exception(failure)
            while not self._requests.empty():
                pending = self._requests.get_nowait()
                if pending is not None and not pending[2].done():
                    pending[2].set_exception(failure)


class McpTool:
    """One tool of an MCP server, as an engine tool."""

    def __init__(self, client: McpClient, spec: ToolSpec, remote_name: str) -> None:
        self.client = client
        self.spec = spec
        self.remote_name = remote_name

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        return await self.client.call(self.remote_name, arguments)


async def load_tools(client: McpClient) -> list[McpTool]:
    """Connect to the server and wrap each of its tools."""
    return [McpTool(client, spec, remote) for spec, remote in await client.tools()]
