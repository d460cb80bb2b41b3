"""The sandbox tools through the engine's tool interface, on the real backends."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import sandbox.runner as runner_module
from engine.tools import ToolContext, ToolRegistry
from engine.tools.sandboxed import (
    SandboxProvider,
    SandboxUnavailableError,
    limits_for,
    sandbox_tools,
)
from sandbox import BackendInfo, Limits, default_policy, detect_backends

USABLE = [b.name for b in detect_backends() if b.usable]


def _registry(tmp_path: Path, backend: str | None = None) -> ToolRegistry:
    policy = default_policy(tmp_path / "home", limits=Limits(wall_seconds=20))
    return ToolRegistry(sandbox_tools(SandboxProvider(policy, backend)))


def _context(tmp_path: Path, **settings: object) -> ToolContext:
    workspace = tmp_path / "run-workspace"
    workspace.mkdir(mode=0o700, exist_ok=True)
    return ToolContext(run_id="run-1", principal="user-1", workspace=workspace, settings=settings)


def test_the_five_tools_register_with_valid_schemas(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    assert registry.names() == ["list_files", "python", "read_file", "shell", "write_file"]
    assert registry.get("python").spec.runs_code and registry.get("shell").spec.runs_code
    assert not registry.get("read_file").spec.runs_code


@pytest.mark.parametrize("backend", USABLE)
async def test_python_tool_with_numpy_and_audit(tmp_path: Path, backend: str) -> None:
    registry = _registry(tmp_path, backend)
    context = _context(tmp_path)
    code = (
        "import numpy as np\n"
        "m = np.arange(9).reshape(3, 3)\n"
        "np.savetxt('matrix.csv', m, fmt='%d', delimiter=',')\n"
        "print(int(m.trace()))\n"
    )
    args = registry.validate("python", {"code": code})
    out = await registry.get("python").run(args, context)
    assert not out.is_error, out.content
    assert out.data["stdout"] == "12\n"
    assert "files written: matrix.csv" in out.content
    assert set(out.audit) == {
        "policy_hash",
        "code_digest",
        "duration_s",
        "exit_code",
        "limit_hit",
        "backend",
    }
    assert out.audit["code_digest"] == hashlib.sha256(code.encode()).hexdigest()
    assert out.audit["exit_code"] == 0 and out.audit["backend"] == backend
    assert out.audit["limit_hit"] is None and len(out.audit["policy_hash"]) == 64
    # The file is in the run's workspace for the next tool.
    listing = await registry.get("list_files").run({}, context)
    assert listing.content == "matrix.csv\t18"  # "0,1,2\n3,4,5\n6,7,8\n"
    read = await registry.get("read_file").run({"path": "matrix.csv"}, context)
    assert read.content.splitlines()[0] == "0,1,2"


async def test_python_error_is_reported_to_the_model(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    out = await registry.get("python").run({"code": "1/0"}, _context(tmp_path))
    assert out.is_error
    assert out.audit["exit_code"] == 1
    assert "ZeroDivisionError" in out.content and "exit code: 1" in out.content


async def test_agent_settings_tighten_the_timeout(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    context = _context(tmp_path, timeout_s=1)
    out = await registry.get("shell").run({"code": "sleep 20"}, context)
    assert out.is_error
    assert out.audit["limit_hit"] == "wall_time"
    assert out.audit["duration_s"] < 10
    assert "wall_time limit" in out.content


async def test_invalid_agent_settings_are_a_tool_error(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    out = await registry.get("shell").run({"code": "true"}, _context(tmp_path, memory_mb=1))
    assert out.is_error and "memory_mb" in out.content


async def test_shell_and_file_tools_share_the_workspace(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    context = _context(tmp_path)
    wrote = await registry.get("write_file").run(
        {"path": "notes/in.txt", "content": "three\nlines\nhere\n"}, context
    )
    assert not wrote.is_error and wrote.audit["bytes"] == 17
    out = await registry.get("shell").run(
        {
            "code": "echo four >> notes/in.txt && wc -l < notes/in.txt > count.txt; "
            "ln -s /etc/passwd pw; ln -s .. up"
        },
        context,
    )
    assert not out.is_error, out.content
    count = await registry.get("read_file").run({"path": "count.txt"}, context)
    assert count.content.strip() == "4"  # the model's file stayed writable by its code
    for path in ("pw", "up/run-workspace/count.txt", "../home/x", "/etc/passwd"):
        refused = await registry.get("read_file").run({"path": path}, context)
        assert refused.is_error, path
        assert refused.audit["error"] == "workspace_path_invalid"
    missing = await registry.get("read_file").run({"path": "nope.txt"}, context)
    assert missing.is_error and missing.audit["error"] == "workspace_file_missing"
    blocked = await registry.get("write_file").run({"path": "pw", "content": "x"}, context)
    assert blocked.is_error
    assert Path("/etc/passwd").read_text().startswith("root:")


async def test_cancel_stops_the_run(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    context = _context(tmp_path)
    task = asyncio.ensure_future(registry.get("shell").run({"code": "sleep 30"}, context))
    await asyncio.sleep(0.5)
    context.cancel.set()
    out = await asyncio.wait_for(task, 10)
    assert out.is_error and "cancelled" in out.content


async def test_no_backend_refuses_code_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = [
        BackendInfo("bubblewrap", None, None, False, "bwrap is not installed"),
        BackendInfo("firejail", None, None, False, "firejail is not installed"),
    ]
    monkeypatch.setattr(runner_module, "_backend_cache", broken)
    registry = _registry(tmp_path)
    for name in ("python", "shell"):
        with pytest.raises(SandboxUnavailableError) as info:
            await registry.get(name).run({"code": "print(1)"}, _context(tmp_path))
        assert info.value.code == "sandbox_unavailable"
        assert "bwrap is not installed" in info.value.message
    # The file tools need no sandbox and keep working.
    listing = await registry.get("list_files").run({}, _context(tmp_path))
    assert not listing.is_error


def test_agent_settings_only_tighten_the_policy(tmp_path: Path) -> None:
    policy = default_policy(tmp_path, limits=Limits(wall_seconds=20, memory_mb=512))
    looser = limits_for(policy, {"timeout_s": 99999, "memory_mb": 65536, "cpu_seconds": 3600})
    assert looser.limits == policy.limits
    tighter = limits_for(policy, {"timeout_s": 2, "memory_mb": 128})
    assert (tighter.limits.wall_seconds, tighter.limits.memory_mb) == (2, 128)
    assert tighter.digest() != policy.digest()
