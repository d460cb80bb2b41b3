"""MCP servers an administrator registered, and their tools for agent runs.

Registering a server stores how to reach it; ``refresh`` connects (a stdio server is started
inside the sandbox), lists its tools and stores them, so agents can enable them without a
server being started at boot. A live connection per server is opened on first use and kept.
Credentials for MCP servers are not supported: stdio servers get the sandbox's scrubbed
environment, and HTTP servers are reached without an Authorization header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import Conflict, InvalidRequest, McpServerUnreachable, NotFound
from appliance.mcp.models import McpServer
from appliance.store.database import Database
from appliance.store.schema import utcnow
from engine.errors import McpServerFailed
from engine.tools.base import ToolSpec
from engine.tools.mcp import SERVER_NAME, Launcher, McpClient, McpServerSpec, McpTool

MAX_ARGV = 64


@dataclass(frozen=True)
class McpServerInfo:
    """A registered server as the API shows it."""

    id: str
    name: str
    transport: str
    command: list[str] | None
    url: str | None
    timeout_s: float
    enabled: bool
    tools: list[dict[str, Any]]
    refreshed_at: str | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _info(row: McpServer) -> McpServerInfo:
    return McpServerInfo(
        id=row.id,
        name=row.name,
        transport=row.transport,
        command=json.loads(row.command) if row.command else None,
        url=row.url,
        timeout_s=row.timeout_s,
        enabled=row.enabled,
        tools=json.loads(row.tools),
        refreshed_at=row.refreshed_at.isoformat() if row.refreshed_at else None,
        last_error=row.last_error,
    )


def _validate(name: Any, transport: Any, command: Any, url: Any, timeout_s: Any) -> None:
    if not isinstance(name, str) or not SERVER_NAME.match(name):
        raise InvalidRequest(
            "name is 1-24 lower-case letters, digits, _ or -, starting with a letter.",
            field="name",
        )
    if transport not in ("stdio", "http"):
        raise InvalidRequest("transport is 'stdio' or 'http'.", field="transport")
    if transport == "stdio":
        if (
            not isinstance(command, list)
            or not command
            or len(command) > MAX_ARGV
            or not all(
                isinstance(a, str) and a and len(a) <= 1000 and "\0" not in a for a in command
            )
        ):
            raise InvalidRequest(
                f"command is a list of 1-{MAX_ARGV} non-empty strings (argv).", field="command"
            )
        if url is not None:
            raise InvalidRequest("A stdio server has no url.", field="url")
    else:
        try:
            parsed = httpx.URL(url) if isinstance(url, str) else None
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidRequest("url is an http(s) URL of the MCP endpoint.", field="url")
        if command is not None:
            raise InvalidRequest("An HTTP server has no command.", field="command")
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not 1 <= timeout_s <= 300
    ):
        raise InvalidRequest("timeout_s is between 1 and 300 seconds.", field="timeout_s")


def _row(session: Session, server_id: str) -> McpServer:
    row = session.get(McpServer, server_id)
    if row is None:
        raise NotFound("No such MCP server.")
    return row


class McpService:
    """Registered MCP servers, their cached tool lists, and live connections."""

    def __init__(self, db: Database, launcher: Launcher | None) -> None:
        self.db = db
        self.launcher = launcher
        self._clients: dict[str, tuple[McpServerSpec, McpClient]] = {}

    def list_servers(self) -> list[McpServerInfo]:
        with self.db.read() as session:
            rows = session.scalars(select(McpServer).order_by(McpServer.name)).all()
            return [_info(r) for r in rows]

    def get(self, server_id: str) -> McpServerInfo:
        with self.db.read() as session:
            return _info(_row(session, server_id))

    def create(
        self,
        name: Any,
        transport: Any,
        command: Any = None,
        url: Any = None,
        timeout_s: Any = 30.0,
    ) -> McpServerInfo:
        """Register a server (not started until refreshed or used)."""
        _validate(name, transport, command, url, timeout_s)
        with self.db.write() as session:
            if session.scalar(select(McpServer.id).where(McpServer.name == name)) is not None:
                raise Conflict(f"An MCP server named {name!r} exists already.")
            row = McpServer(
                id=uuid4().hex,
                name=name,
                transport=transport,
                command=json.dumps(command) if command is not None else None,
                url=url,
                timeout_s=float(timeout_s),
                enabled=True,
                tools="[]",
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _info(row)

    def set_enabled(self, server_id: str, enabled: bool) -> McpServerInfo:
        with self.db.write() as session:
            row = _row(session, server_id)
            row.enabled = enabled
            return _info(row)

    def forget(self, server_id: str) -> None:
        """Remove a server's registration (then :meth:`disconnect` it)."""
        with self.db.write() as session:
            session.delete(_row(session, server_id))

    async def disconnect(self, server_id: str) -> None:
        """Close a server's live connection, if one is open."""
        await self._drop(server_id)

    async def refresh(self, server_id: str) -> McpServerInfo:
        """Connect, list the tools and store them (the error is stored too, and raised)."""
        info = self.get(server_id)
        await self._drop(server_id)
        try:
            client = self._client(info)
            listed = await client.tools()
        except McpServerFailed as exc:
            self._record(server_id, None, exc.message)
            raise McpServerUnreachable(exc.message, server=info.name) from exc
        tools = [
            {
                "name": spec.name,
                "remote": remote,
                "description": spec.description,
                "parameters": spec.parameters,
            }
            for spec, remote in listed
        ]
        self._record(server_id, tools, None)
        return self.get(server_id)

    def tools(self) -> list[McpTool]:
        """The tools of every enabled server as of its last refresh (connections open lazily)."""
        out = []
        for info in self.list_servers():
            if not info.enabled or not info.tools:
                continue
            client = self._client(info)
            for tool in info.tools:
                spec = ToolSpec(
                    tool["name"], tool["description"], tool["parameters"], runs_code=True
                )
                out.append(McpTool(client, spec, tool["remote"]))
        return out

    async def close(self) -> None:
        """Close every live connection (sealing, shutdown)."""
        for server_id in list(self._clients):
            await self._drop(server_id)

    def _client(self, info: McpServerInfo) -> McpClient:
        spec = McpServerSpec(
            name=info.name,
            transport="stdio" if info.transport == "stdio" else "http",
            command=tuple(info.command or ()),
            url=info.url,
            timeout_s=info.timeout_s,
        )
        cached = self._clients.get(info.id)
        if cached is not None and cached[0] == spec:
            return cached[1]
        client = McpClient(spec, self.launcher if spec.transport == "stdio" else None)
        self._clients[info.id] = (spec, client)
        return client

    async def _drop(self, server_id: str) -> None:
        cached = self._clients.pop(server_id, None)
        if cached is not None:
            await cached[1].close()

    def _record(
        self, server_id: str, tools: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        with self.db.write() as session:
            row = session.get(McpServer, server_id)
            if row is None:
                return
            if tools is not None:
                row.tools = json.dumps(tools)
                row.refreshed_at = utcnow()
            row.last_error = error
