"""Workspace file tools: ``read_file``, ``write_file`` and ``list_files``.

They touch only the agent run's workspace, through :class:`sandbox.Workspace` (relative paths,
no ``..``, links never followed, race-free), so a model cannot read or write anything else even
when sandboxed code planted a symlink there.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.tools.base import ToolContext, ToolOutput, ToolSpec
from sandbox import SandboxError, Workspace

MAX_READ_BYTES = 1_000_000
MAX_WRITE_BYTES = 10_000_000
_NO_WORKSPACE = "This run has no workspace, so there are no files to use."


Owner = tuple[int, int] | None


def _workspace(context: ToolContext, owner: Owner) -> Workspace | None:
    return Workspace(context.workspace, owner) if context.workspace is not None else None


class _FileTool:
    """``owner``: the sandbox's uid and gid when the appliance runs as root, so that files the
    model writes here stay writable by the code it runs next."""

    spec: ToolSpec

    def __init__(self, owner: Owner = None) -> None:
        self.owner = owner


class ReadFileTool(_FileTool):
    """Reads a text file from the workspace."""

    spec = ToolSpec(
        name="read_file",
        description="Read a text file from the run's workspace (a path relative to it).",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 1024},
                "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_READ_BYTES},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        space = _workspace(context, self.owner)
        if space is None:
            return ToolOutput(_NO_WORKSPACE, is_error=True)
        path = str(arguments["path"])
        try:
            data = space.read(path, int(arguments.get("max_bytes", MAX_READ_BYTES)))
        except SandboxError as exc:
            return ToolOutput(exc.message, is_error=True, audit={"path": path, "error": exc.code})
        return ToolOutput(
            data.decode("utf-8", errors="replace"),
            data={"path": path, "bytes": len(data)},
            audit={"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        )


class WriteFileTool(_FileTool):
    """Creates or replaces a text file in the workspace."""

    spec = ToolSpec(
        name="write_file",
        description="Create or replace a text file in the run's workspace.",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 1024},
                "content": {"type": "string", "maxLength": MAX_WRITE_BYTES},
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
        runs_code=False,
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        space = _workspace(context, self.owner)
        if space is None:
            return ToolOutput(_NO_WORKSPACE, is_error=True)
        path = str(arguments["path"])
        data = str(arguments["content"]).encode("utf-8")
        try:
            entry = space.write(path, data, max_bytes=MAX_WRITE_BYTES)
        except SandboxError as exc:
            return ToolOutput(exc.message, is_error=True, audit={"path": path, "error": exc.code})
        return ToolOutput(
            f"wrote {entry.size} bytes to {entry.path}",
            data={"path": entry.path, "bytes": entry.size},
            audit={"path": entry.path, "bytes": entry.size, "sha256": _digest(data)},
        )


class ListFilesTool(_FileTool):
    """Lists the workspace's files with their sizes."""

    spec = ToolSpec(
        name="list_files",
        description="List the files in the run's workspace (path and size in bytes).",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        space = _workspace(context, self.owner)
        if space is None:
            return ToolOutput(_NO_WORKSPACE, is_error=True)
        entries = space.entries() if space.path.exists() else []
        listing = "\n".join(f"{e.path}\t{e.size}" for e in entries) or "(the workspace is empty)"
        return ToolOutput(
            listing,
            data={"files": [{"path": e.path, "size": e.size} for e in entries]},
            audit={"count": len(entries)},
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
