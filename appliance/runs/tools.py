"""The tools agents may enable in this appliance."""

from __future__ import annotations

import re

from appliance.home import Home
from appliance.sandboxing import sandbox_policy
from appliance.settings import EnclaveSettings
from engine.tools.base import ToolRegistry
from engine.tools.builtin import Calculator, CurrentTime
from engine.tools.mcp import Launcher
from engine.tools.sandboxed import SandboxProvider, sandbox_tools
from sandbox import Sandbox, SandboxError, choose_backend
from sandbox.launch import Launcher as SandboxLauncher


def default_tools(settings: EnclaveSettings, home: Home) -> ToolRegistry:
    """Built-in tools every appliance offers: calculator and current_time, and the code tools
    (``python``, ``shell``, ``read_file``, ``write_file``, ``list_files``) that run in the
    sandbox — registered even where no backend works, so an agent that enables them gets a
    clear ``sandbox_unavailable`` error instead of a missing tool."""
    provider = SandboxProvider(sandbox_policy(settings), settings.sandbox_backend)
    return ToolRegistry([Calculator(), CurrentTime(), *sandbox_tools(provider)])


# A stdio MCP server lives as long as its connection: CPU time is bounded per server, not
# per call (calls are bounded by the server's timeout).
MCP_CPU_SECONDS = 3600


def mcp_launcher(settings: EnclaveSettings, home: Home) -> Launcher | None:
    """How stdio MCP servers are started: inside the sandbox (the strongest backend, the
    default policy: no network, $ENCLAVE_HOME and secret paths hidden, its own workspace under
    ``workspaces/mcp-<server>``), or not at all — None when no backend works here; registering
    still works and starting is refused with the reason."""
    try:
        backend = choose_backend(settings.sandbox_backend)
    except SandboxError:
        return None
    base = sandbox_policy(settings)
    policy = base.with_limits(cpu_seconds=MCP_CPU_SECONDS, wall_seconds=3600)
    sandbox = Sandbox(policy, backend)
    root = home.root / "workspaces"

    def launch(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", argv[0].rsplit("/", 1)[-1])[:32]
        workspace = sandbox.adopt_workspace(root / f"mcp-{name}")
        return SandboxLauncher(policy, backend, workspace).command(argv, env)

    return launch
