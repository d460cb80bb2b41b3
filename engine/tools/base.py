"""The tool contract: what every tool an agent can call offers, and the registry that holds them.

A tool declares a :class:`ToolSpec` (name, description, JSON-schema parameters) and implements
``async run(arguments, context) -> ToolOutput``. The run loop validates the model's arguments
against the schema before ``run`` is called, so a tool only ever sees well-formed input; a tool
reports its own failures as ``ToolOutput(is_error=True)`` (the model sees the message and may
try again) and raises :class:`~engine.errors.EngineError` only for what should end the turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jsonschema

from engine.errors import ToolArgumentsInvalid, UnknownTool
from engine.providers.base import ToolDefinition


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model and the agent builder see it."""

    name: str
    description: str
    parameters: dict[str, Any]
    # Tools that run code or touch files say so: the appliance may ask before running them.
    runs_code: bool = False

    def definition(self) -> ToolDefinition:
        """The provider-facing definition (validates the name and schema shape)."""
        return ToolDefinition(self.name, self.description, self.parameters)


@dataclass
class ToolContext:
    """What a tool may know about the run that calls it (never the user's credentials)."""

    run_id: str
    # An opaque id of whoever runs the agent, for audit records only.
    principal: str = ""
    # A per-run directory the file and code tools share (created by the run, wiped after).
    workspace: Path | None = None
    # Per-tool settings from the agent definition (e.g. a timeout or memory limit).
    settings: dict[str, Any] = field(default_factory=dict)
    # ``host:port`` destinations the code tools may reach (RunSpec.tool_network_allowlist:
    # an administrator's grant, not the definition's); empty: no network.
    network_allowlist: tuple[str, ...] = ()
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Citation:
    """Where a piece of a tool's answer came from (a knowledge-base passage)."""

    document_id: str
    document_name: str
    chunk_id: str
    start: int
    end: int
    page: int | None = None
    section: str | None = None
    score: float | None = None
    knowledge_base_id: str | None = None


@dataclass(frozen=True)
class ToolOutput:
    """The result of one tool execution.

    ``content`` is what the model reads; ``data`` is structured detail for the UI (e.g. stdout
    and stderr separately); ``audit`` is what the audit record keeps (policy hash, code digest,
    duration, exit code, limit hit — never the content itself).
    """

    content: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    citations: tuple[Citation, ...] = ()


@runtime_checkable
class Tool(Protocol):
    """A callable tool."""

    spec: ToolSpec

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        """Execute with schema-valid ``arguments``."""
        ...


class ToolRegistry:
    """The tools an engine knows, by name. Agents enable a subset."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add a tool; a second tool with the same name is a programming error."""
        name = tool.spec.name
        tool.spec.definition()  # validates the name and schema shape
        jsonschema.Draft202012Validator.check_schema(tool.spec.parameters)
        if name in self._tools:
            raise ValueError(f"A tool named {name!r} is already registered.")
        self._tools[name] = tool

    def unregister(self, name: str) -> None:
        """Remove a tool (e.g. an MCP server that was removed); unknown names are ignored."""
        self._tools.pop(name, None)

    def extended(self, tools: list[Tool]) -> ToolRegistry:
        """A new registry with these tools and ``tools`` (e.g. one run's MCP tools)."""
        return ToolRegistry([*self._tools.values(), *tools])

    def names(self) -> list[str]:
        """Every registered tool name, sorted."""
        return sorted(self._tools)

    def get(self, name: str) -> Tool:
        """The tool called ``name``, or :class:`UnknownTool`."""
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(
                f"No tool named {name!r} is available; known tools: {', '.join(self.names())}.",
                tool=name,
            ) from None

    def specs(self, names: list[str] | None = None) -> list[ToolSpec]:
        """Specs of the named tools (all when ``names`` is None), in the order given."""
        chosen = self.names() if names is None else names
        return [self.get(n).spec for n in chosen]

    def validate(self, name: str, arguments: Any) -> dict[str, Any]:
        """``arguments`` checked against the tool's schema, or :class:`ToolArgumentsInvalid`."""
        tool = self.get(name)
        if not isinstance(arguments, dict):
            raise ToolArgumentsInvalid(f"Arguments for {name!r} must be a JSON object.", tool=name)
        validator = jsonschema.Draft202012Validator(tool.spec.parameters)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            raise ToolArgumentsInvalid(
                f"Arguments for {name!r} are invalid at {where}: {first.message}",
                tool=name,
                path=where,
            )
        return arguments
