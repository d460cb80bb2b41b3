"""The escape suite: every attack in :mod:`escape_attacks`, against every working backend.

Each attack runs for real under the default policy (with $ENCLAVE_HOME = the fake home whose
files hold the canary, and the workspace inside it, as in production). Per attack the test
asserts that nothing secret came back (no canary, no ``LEAK`` line), that the attack program
really ran (``DONE``, or the limit that must stop it), and that nothing outside changed: the
home's files, /root, /home, a host file, no marker file on the host, no connection to any
listener. The runs of one backend go concurrently (each has its own cgroup and PID namespace).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox import (
    RunResult,
    Sandbox,
    Workspace,
    WorkspacePathInvalid,
    default_policy,
)
from tests.sandbox.conftest import USABLE, Targets
from tests.sandbox.escape_attacks import ATTACKS, PRELUDE, Attack

PYTHON = [sys.executable, "-I", "-"]
BASH = ["/bin/bash", "--noprofile", "--norc", "-s"]
CONCURRENCY = 3
# The double-fork attacks write their marker 2.5–3 s after they start.
SURVIVOR_GRACE_S = 3.5


def _program(attack: Attack, targets: Targets) -> bytes:
    if attack.lang == "sh":
        return attack.code.encode()
    prelude = PRELUDE.format(
        home=str(targets.home),
        pid=os.getpid(),
        port4=targets.port4,
        port6=targets.port6,
        unix=str(targets.unix_path),
        abstract=targets.abstract,
        other_home=str(targets.other_home),
        root_file=str(targets.root_file),
        marker=targets.marker,
        host_file=str(targets.host_file),
    )
    return (prelude + attack.code).encode()


async def _run_all(backend: str, targets: Targets) -> dict[str, RunResult]:
    base = default_policy(targets.home, secret_paths=(str(targets.host_file),))
    base = base.with_limits(wall_seconds=20)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(attack: Attack) -> tuple[str, RunResult]:
        policy = replace(base, limits=replace(base.limits, **attack.limits))
        sandbox = Sandbox(policy, backend, workspace_root=targets.home / "workspaces")
        argv = BASH if attack.lang == "sh" else PYTHON
        async with gate:
            result = await sandbox.run(
                argv, stdin=_program(attack, targets), keep_workspace=attack.keep
            )
        return attack.name, result

    pairs = await asyncio.gather(*(one(a) for a in ATTACKS))
    return dict(pairs)


@pytest.fixture(scope="module", params=USABLE)
def outcomes(request: pytest.FixtureRequest, targets: Targets) -> dict[str, RunResult]:
    before = targets.fingerprint()
    results = asyncio.run(_run_all(request.param, targets))
    time.sleep(SURVIVOR_GRACE_S)
    assert targets.fingerprint() == before
    yield results
    for result in results.values():
        if result.workspace:
            Workspace(Path(result.workspace)).remove()


def test_the_suite_has_at_least_forty_attacks() -> None:
    assert len(ATTACKS) >= 40


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_is_contained(
    attack: Attack, outcomes: dict[str, RunResult], targets: Targets
) -> None:
    result = outcomes[attack.name]
    shown = f"{result.backend} {attack.name}: {result.to_dict()}"
    output = result.stdout + result.stderr
    assert targets.canary not in output, shown
    assert "LEAK" not in result.stdout, shown
    if attack.expect_done:
        assert "DONE" in result.stdout and result.exit_code == 0, shown
    if attack.expect_limit:
        assert result.limit_hit == attack.expect_limit, shown
    assert targets.markers_on_host() == [], shown
    assert targets.connections() == 0, shown
    if result.workspace:
        space = Workspace(Path(result.workspace))
        assert not (space.path / targets.marker).exists(), "a process outlived its run"
        for name in ("link_vault", "link_shadow", "link_home/enclave.db"):
            if os.path.lexists(space.path / name.split("/")[0]):
                with pytest.raises(WorkspacePathInvalid):
                    space.read(name, 1 << 20)
                with pytest.raises(WorkspacePathInvalid):
                    space.write(name, b"overwritten")
        assert all(not e.path.startswith("link_") for e in space.entries())


@pytest.mark.parametrize("backend", USABLE)
async def test_symlink_swapped_between_check_and_use(backend: str, targets: Targets) -> None:
    """Sandboxed code flips ``target`` (and its parent ``d``) between a regular file and a
    symlink to a host file while the host writes ``target`` as fast as it can: the host must
    never write through the link."""
    victim = targets.host_file
    before = victim.read_bytes()
    policy = default_policy(targets.home).with_limits(wall_seconds=10)
    sandbox = Sandbox(policy, backend, workspace_root=targets.home / "workspaces")
    space = sandbox.new_workspace()
    flipper = (
        "import os, time\n"
        f"VICTIM = {str(victim)!r}\n"
        "os.makedirs('d', exist_ok=True)\n"
        "end = time.time() + 2.0\n"
        "while time.time() < end:\n"
        "    for path, target in (('target', VICTIM), ('d', os.path.dirname(VICTIM))):\n"
        "        try:\n"
        "            os.replace(path, path + '.old') if not os.path.islink(path) else None\n"
        "            os.symlink(target, path + '.new')\n"
        "            os.replace(path + '.new', path)\n"
        "            os.unlink(path)\n"
        "            os.replace(path + '.old', path)\n"
        "        except OSError:\n"
        "            pass\n"
        "print('DONE')\n"
    )
    space.write("target", b"first")
    space.write("d/target", b"first")
    run = asyncio.ensure_future(
        sandbox.run(PYTHON, stdin=flipper.encode(), workspace=space, keep_workspace=True)
    )
    refused = 0
    writes = 0
    while not run.done():
        for name in ("target", "d/target"):
            try:
                space.write(name, b"host wrote this")
                writes += 1
            except WorkspacePathInvalid:
                refused += 1
        await asyncio.sleep(0)
    result = await run
    try:
        assert "DONE" in result.stdout, result.to_dict()
        assert victim.read_bytes() == before
        assert not (victim.parent / "target").exists()
        assert writes + refused > 100
    finally:
        space.remove()


def test_the_attacks_do_escape_without_a_sandbox(targets: Targets) -> None:
    """Control: the same programs run bare on the host do reach the secrets, so the suite
    above would fail if the sandbox let them through."""
    import socket
    import subprocess

    from tests.sandbox.conftest import Listener

    own = Listener(socket.create_server(("127.0.0.1", 0)))
    try:
        port = own.sock.getsockname()[1]
        for name in (
            "read_vault_json",
            "read_root_home",
            "environment_leak",
            "read_etc_shadow",
            "seccomp_filter_active",
        ):
            attack = next(a for a in ATTACKS if a.name == name)
            program = (
                _program(attack, targets)
                .decode()
                .replace(f"PORT4 = {targets.port4}", f"PORT4 = {port}")
            )
            bare = subprocess.run(
                PYTHON, input=program, capture_output=True, text=True, timeout=30, check=False
            )
            assert "LEAK" in bare.stdout, (name, bare.stdout, bare.stderr)
        attack = next(a for a in ATTACKS if a.name == "connect_appliance_ipv4")
        program = (
            _program(attack, targets)
            .decode()
            .replace(f"PORT4 = {targets.port4}", f"PORT4 = {port}")
        )
        subprocess.run(
            PYTHON, input=program, capture_output=True, text=True, timeout=30, check=False
        )
        deadline = time.monotonic() + 5
        while own.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert own.connections == 1
    finally:
        own.close()
