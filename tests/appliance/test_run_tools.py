"""The appliance's tool set through the run loop: sandboxed code runs and is audited."""

from __future__ import annotations

import json

from appliance import Appliance
from appliance.runs.hooks import AuditHook
from appliance.runs.tools import default_tools
from engine.agents import parse_definition
from engine.hooks import HookChain
from engine.providers.scripted import ScriptedProvider
from engine.run import Runner, RunSpec


async def test_the_python_tool_runs_in_the_sandbox_and_is_audited(appliance: Appliance) -> None:
    tools = default_tools(appliance.settings, appliance.home)
    assert {
        "calculator",
        "current_time",
        "python",
        "shell",
        "read_file",
        "write_file",
        "list_files",
    } <= set(tools.names())
    code = "import os\nprint(6 * 7, os.getuid())"
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "python", "arguments": {"code": code}}),
            json.dumps({"tool": "respond"}),
            "It printed 42.",
        ]
    )
    definition = parse_definition(
        {"name": "py", "model": {"model": "s"}, "tools": [{"name": "python"}]}
    )
    workspace = appliance.home.root / "workspaces" / "run-py"
    runner = Runner(tools, HookChain([AuditHook(appliance.audit)]))
    run = runner.start(
        RunSpec("run-py", "user:1", "agent-1", definition, provider, "compute", workspace=workspace)
    )
    events = [e async for e in run.events.follow()]
    result = next(e for e in events if e.kind == "tool_result")
    assert not result.data["is_error"], result.data
    # It ran as the sandbox's unprivileged uid, not as the appliance's root.
    assert "42 65534" in result.data["content"]
    entry = appliance.audit.query(None, None, None, "tool.execute", 10, 0)[-1]
    details = entry["details"]
    assert details["tool"] == "python" and details["run_id"] == "run-py"
    assert len(details["policy_hash"]) == 64 and details["exit_code"] == 0
    # The audit keeps digests, never the code or its output.
    assert "print(6 * 7" not in json.dumps(entry) and "42 65534" not in json.dumps(entry)
