"""The runner's contract against the real backends: results, workspaces, limits, refusal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import sandbox.runner as runner_module
from sandbox import (
    BackendUnusable,
    Limits,
    PolicyInvalid,
    Sandbox,
    SandboxPolicy,
    SandboxUnavailable,
    Workspace,
    WorkspacePathInvalid,
    default_policy,
)
from sandbox.backends import BackendInfo
from tests.sandbox.conftest import USABLE

PY = [sys.executable, "-I", "-c"]


@pytest.fixture
def policy(tmp_path: Path) -> SandboxPolicy:
    return default_policy(tmp_path / "home", limits=Limits(wall_seconds=20))


@pytest.mark.parametrize("backend", USABLE)
async def test_inputs_outputs_and_resource_use(
    backend: str, policy: SandboxPolicy, tmp_path: Path
) -> None:
    sandbox = Sandbox(policy, backend, workspace_root=tmp_path / "ws")
    code = (
        "import os, numpy\n"
        "data = open('in/data.txt').read()\n"
        "open('out.txt', 'w').write(data.upper())\n"
        "print(os.getuid(), numpy.arange(4).sum())\n"
        "import sys; print('to stderr', file=sys.stderr); sys.exit(3)\n"
    )
    result = await sandbox.run([*PY, code], files={"in/data.txt": b"hello"}, keep_workspace=True)
    assert result.exit_code == 3
    assert result.stdout.split() == ["65534" if os.geteuid() == 0 else str(os.getuid()), "6"]
    assert result.stderr == "to stderr\n"
    assert result.files == ("out.txt",)  # produced or changed by the run, not the inputs
    assert result.limit_hit is None and not result.stdout_truncated
    assert result.backend == backend and result.policy_hash == policy.digest()
    assert result.wall_seconds > 0 and result.peak_rss_mb > 1
    assert result.workspace is not None
    kept = Workspace(Path(result.workspace))
    assert kept.read("out.txt", 100) == b"HELLO"
    kept.remove()
    assert not Path(result.workspace).exists()


@pytest.mark.parametrize("backend", USABLE)
async def test_workspace_is_removed_after_the_run(
    backend: str, policy: SandboxPolicy, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    sandbox = Sandbox(policy, backend, workspace_root=root)
    result = await sandbox.run(["/bin/sh", "-c", "mkdir -p a/b && echo x > a/b/c && chmod 0 a"])
    assert result.exit_code == 0 and result.workspace is None
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("backend", USABLE)
async def test_output_is_capped_with_a_flag(backend: str, tmp_path: Path) -> None:
    policy = default_policy(tmp_path, limits=Limits(max_output_bytes=4096, wall_seconds=20))
    sandbox = Sandbox(policy, backend)
    result = await sandbox.run([*PY, "print('z' * 100000)"])
    assert result.stdout_truncated and not result.stderr_truncated
    assert len(result.stdout) == 4096
    assert result.limit_hit == "output"


@pytest.mark.parametrize("backend", USABLE)
async def test_cancelling_kills_the_tree(
    backend: str, policy: SandboxPolicy, tmp_path: Path
) -> None:
    sandbox = Sandbox(policy, backend, workspace_root=tmp_path / "ws")
    task = asyncio.ensure_future(sandbox.run(["/bin/sh", "-c", "sleep 30 & sleep 30"]))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "ws").iterdir()) == []


@pytest.mark.parametrize("backend", USABLE)
async def test_concurrent_runs_are_independent(
    backend: str, policy: SandboxPolicy, tmp_path: Path
) -> None:
    sandbox = Sandbox(policy, backend, workspace_root=tmp_path / "ws")
    results = await asyncio.gather(
        *(sandbox.run(["/bin/sh", "-c", f"echo {i} > n; cat n; ls"]) for i in range(4))
    )
    assert [r.stdout.split() for r in results] == [[str(i), "n"] for i in range(4)]


def test_policy_digest_is_stable_and_covers_every_field(tmp_path: Path) -> None:
    a = default_policy(tmp_path)
    b = default_policy(tmp_path)
    assert a.digest() == b.digest() and len(a.digest()) == 64
    assert a.with_limits(memory_mb=512).digest() != a.digest()
    assert replace(a, hidden_paths=(*a.hidden_paths, "/srv")).digest() != a.digest()
    data = json.loads(json.dumps(a.canonical()))
    assert data["network"] == "none" and "/root" in data["hidden_paths"]
    assert str(tmp_path.resolve()) in data["hidden_paths"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"network": "host"}, "Network mode"),
        ({"hidden_paths": ("relative",)}, "absolute"),
        ({"readonly_paths": ("/",)}, "absolute paths below /"),
        ({"readonly_paths": ("/home",)}, "expose the hidden path"),
        ({"env": (("ENCLAVE_HOME", "x"),)}, "may not enter"),
        ({"env": (("HTTPS_PROXY", "x"),)}, "may not enter"),
        ({"env": (("GITHUB_TOKEN", "x"),)}, "may not enter"),
        ({"uid": 0}, "unprivileged"),
    ],
)
def test_bad_policies_are_refused(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        replace(SandboxPolicy(), **change)
    assert fragment in info.value.message
    assert info.value.code == "sandbox_policy_invalid"


@pytest.mark.parametrize("field", ["cpu_seconds", "memory_mb", "max_processes", "wall_seconds"])
def test_limits_out_of_range_are_refused(field: str) -> None:
    with pytest.raises(PolicyInvalid):
        Limits(**{field: 0})


def test_no_backend_means_refusal_not_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = [
        BackendInfo("bubblewrap", None, None, False, "bwrap is not installed"),
        BackendInfo("firejail", "/usr/bin/firejail", "0.9", False, "isolation probe failed: x"),
    ]
    monkeypatch.setattr(runner_module, "_backend_cache", broken)
    with pytest.raises(SandboxUnavailable) as info:
        Sandbox(SandboxPolicy())
    assert info.value.code == "sandbox_unavailable"
    assert "bwrap is not installed" in info.value.message
    with pytest.raises(BackendUnusable, match="isolation probe failed"):
        Sandbox(SandboxPolicy(), "firejail")


def test_unknown_backend_name() -> None:
    with pytest.raises(BackendUnusable, match="Unknown sandbox backend"):
        Sandbox(SandboxPolicy(), "docker")


def test_workspace_paths_are_confined(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    for bad in ("/etc/passwd", "../x", "a/../../x", "", "a/\x00"):
        with pytest.raises(WorkspacePathInvalid):
            space.write(bad, b"x")
    (space.path / "link").symlink_to(tmp_path)
    with pytest.raises(WorkspacePathInvalid):
        space.write("link/escaped", b"x")
    assert not (tmp_path / "escaped").exists()
    assert space.write("ok/file.txt", b"x").path == "ok/file.txt"
    assert [e.path for e in space.entries()] == ["ok/file.txt"]
