"""Code tools that run inside the OS sandbox: ``python`` and ``shell``.

Each call runs in the agent run's workspace (``ToolContext.workspace``; a throw-away one when
the run has none) under the sandbox policy, and returns what the model reads, the structured
result for the UI, and an audit record (policy hash, code digest, duration, exit, limit hit,
backend) — never the code or its output in the audit record.

With no working sandbox backend the tools raise :class:`SandboxUnavailableError`: code is
never run without isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import EngineError
from engine.tools.base import Tool, ToolContext, ToolOutput, ToolSpec
from engine.tools.workspace_files import ListFilesTool, ReadFileTool, WriteFileTool
from sandbox import (
    PolicyInvalid,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxPolicy,
    SandboxUnavailable,
)

# What the model sees of each stream (the UI gets the runner's full capped output).
_MODEL_CHARS = 8000


class SandboxUnavailableError(EngineError):
    """No isolation backend works: the code tools refuse rather than run unsandboxed."""

    code = "sandbox_unavailable"
    default_message = (
        "Code tools are disabled: no sandbox backend (bubblewrap or firejail) works here."
    )


def tool_python() -> str:
    """The interpreter the ``python`` tool runs: this one, except in the frozen bundle, whose
    executable is the ``enclave`` program (not an interpreter): there, the system's python3."""
    if getattr(sys, "frozen", False):
        return shutil.which("python3") or "/usr/bin/python3"
    return sys.executable


@dataclass
class SandboxProvider:
    """Builds the :class:`~sandbox.Sandbox` on first use (backend discovery runs once)."""

    policy: SandboxPolicy
    backend: str | None = None
    python: str = field(default_factory=lambda: tool_python())
    _sandbox: Sandbox | None = field(default=None, init=False, repr=False)

    def get(self) -> Sandbox:
        if self._sandbox is None:
            try:
                self._sandbox = Sandbox(self.policy, self.backend)
            except SandboxUnavailable as exc:
                raise SandboxUnavailableError(exc.message) from exc
            except SandboxError as exc:
                raise SandboxUnavailableError(f"{exc.code}: {exc.message}") from exc
        return self._sandbox


def limits_for(policy: SandboxPolicy, settings: dict[str, Any]) -> SandboxPolicy:
    """The policy with an agent's per-tool settings applied; they can only tighten it
    (``timeout_s``, ``memory_mb``, ``cpu_seconds`` above the policy's keep the policy's)."""
    limits = policy.limits
    changes: dict[str, Any] = {}
    if "timeout_s" in settings:
        changes["wall_seconds"] = min(float(settings["timeout_s"]), limits.wall_seconds)
    if "memory_mb" in settings:
        changes["memory_mb"] = min(int(settings["memory_mb"]), limits.memory_mb)
    if "cpu_seconds" in settings:
        changes["cpu_seconds"] = min(int(settings["cpu_seconds"]), limits.cpu_seconds)
    return policy.with_limits(**changes) if changes else policy


def with_network(policy: SandboxPolicy, allowlist: tuple[str, ...]) -> SandboxPolicy:
    """The policy with TCP to ``allowlist`` (``network=allowlist``), or unchanged when it is
    empty (no network)."""
    if not allowlist:
        return policy
    return replace(policy, network="allowlist", network_allowlist=tuple(allowlist))


def render_result(result: RunResult, limit: int = _MODEL_CHARS) -> str:
    """The model's view of a run: exit status, the limit hit, and both streams (clipped)."""
    lines = [f"exit code: {result.exit_code if result.exit_code is not None else 'killed'}"]
    if result.limit_hit:
        lines.append(f"stopped: the {result.limit_hit} limit was reached")
    for name, text, cut in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        if text or cut:
            shown = text[:limit]
            more = " (truncated)" if cut or len(text) > limit else ""
            lines.append(f"{name}{more}:\n{shown}")
    if result.files:
        lines.append("files written: " + ", ".join(result.files[:50]))
    return "\n".join(lines)


class _CodeTool(ABC):
    """Shared body of the code tools: the subclass says how to run ``code``."""

    spec: ToolSpec

    def __init__(self, provider: SandboxProvider) -> None:
        self.provider = provider

    @abstractmethod
    def argv(self) -> list[str]:
        """The interpreter command line that reads the code from stdin."""

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        code = str(arguments["code"])
        sandbox = self.provider.get()
        try:
            policy = limits_for(sandbox.policy, context.settings)
            policy = with_network(policy, context.network_allowlist)
        except (PolicyInvalid, ValueError, TypeError) as exc:
            return ToolOutput(f"Invalid sandbox settings for this tool: {exc}", is_error=True)
        try:
            runner = Sandbox(policy, sandbox.backend, sandbox.workspace_root)
        except SandboxError as exc:
            # E.g. a backend without the allowlist relay here: refused, never widened.
            return ToolOutput(f"{exc.code}: {exc.message}", is_error=True)
        workspace = (
            runner.adopt_workspace(context.workspace) if context.workspace is not None else None
        )
        task = asyncio.ensure_future(
            runner.run(self.argv(), stdin=code.encode("utf-8"), workspace=workspace)
        )
        cancel = asyncio.ensure_future(context.cancel.wait())
        try:
            await asyncio.wait({task, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return ToolOutput("The run was cancelled.", is_error=True)
        try:
            result = task.result()
        except SandboxError as exc:
            return ToolOutput(f"{exc.code}: {exc.message}", is_error=True)
        audit = {
            "policy_hash": result.policy_hash,
            "code_digest": hashlib.sha256(code.encode("utf-8")).hexdigest(),
            "duration_s": result.wall_seconds,
            "exit_code": result.exit_code,
            "limit_hit": result.limit_hit,
            "backend": result.backend,
        }
        if policy.network_allowlist:
            # Which destinations this run could reach (the policy hash covers them too).
            audit["network_allowlist"] = ",".join(policy.network_allowlist)
        failed = result.exit_code != 0 or result.limit_hit is not None
        return ToolOutput(
            render_result(result), is_error=failed, data=result.to_dict(), audit=audit
        )


_CODE_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 200_000}},
    "required": ["code"],
    "additionalProperties": False,
}


class PythonTool(_CodeTool):
    """Runs Python source with the appliance's interpreter (read-only, its libraries too)."""

    spec = ToolSpec(
        name="python",
        description=(
            "Run a Python 3 program in an isolated sandbox (no network). The working directory "
            "is the run's workspace: read inputs and write results there. numpy and the other "
            "installed scientific libraries can be imported. Print what you want to see."
        ),
        parameters=_CODE_SCHEMA,
        runs_code=True,
    )

    def argv(self) -> list[str]:
        # -I: ignore PYTHON* variables and the user site; "-": the program comes on stdin.
        return [self.provider.python, "-I", "-"]


class ShellTool(_CodeTool):
    """Runs a bash script in the sandbox."""

    spec = ToolSpec(
        name="shell",
        description=(
            "Run a bash script in an isolated sandbox (no network, standard Unix tools). The "
            "working directory is the run's workspace."
        ),
        parameters=_CODE_SCHEMA,
        runs_code=True,
    )

    def argv(self) -> list[str]:
        return ["/bin/bash", "--noprofile", "--norc", "-s"]


def sandbox_tools(provider: SandboxProvider) -> list[Tool]:
    """The built-in sandbox tools, ready for a :class:`~engine.tools.base.ToolRegistry`."""
    policy = provider.policy
    # As root the code runs as the policy's uid: files the model writes must be its own.
    owner = (policy.uid, policy.gid) if os.geteuid() == 0 else None
    return [
        PythonTool(provider),
        ShellTool(provider),
        ReadFileTool(owner),
        WriteFileTool(owner),
        ListFilesTool(owner),
    ]
