"""The thread that starts a run (sandbox.spawn): the run gets its namespace, cgroup and filter;
the appliance keeps its own, and survives every kill the runner sends into the run's cgroup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import Limits, Sandbox, default_policy
from sandbox.cgroups import cgroup_support
from sandbox.netns import supported as netns_supported
from sandbox.seccomp import spawn_filter
from sandbox.spawn import SpawnThread, take
from tests.sandbox.conftest import USABLE

pytestmark = pytest.mark.skipif(
    netns_supported() is not None, reason="the spawn thread is used as root only"
)


def _own_state() -> tuple[str, str, str]:
    status = Path("/proc/self/status").read_text()
    seccomp = re.search(r"^Seccomp:\s*(\d)", status, re.M)
    assert seccomp is not None
    return (
        seccomp.group(1),
        os.readlink("/proc/self/ns/net"),
        Path("/proc/self/cgroup").read_text(),
    )


def _child_state(thread: SpawnThread, seccomp: bytes | None) -> tuple[str, str, str]:
    script = (
        "import os, re\n"
        "s = open('/proc/self/status').read()\n"
        "print(re.search(r'^Seccomp:\\s*(\\d)', s, re.M).group(1))\n"
        "print(os.readlink('/proc/self/ns/net'))\n"
        "print(open('/proc/self/cgroup').read(), end='')\n"
    )

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-I", "-c", script], stdout=subprocess.PIPE, text=True
        )

    spawned = thread.start_blocking(start, None, seccomp)
    try:
        out, _ = spawned.value.communicate(timeout=30)
    finally:
        spawned.release()
    mode, netns, cgroups = out.split("\n", 2)
    return mode, netns, cgroups


def test_child_gets_the_threads_setup_and_the_appliance_keeps_its_own() -> None:
    before = _own_state()
    thread = SpawnThread(None)
    mode, netns, _ = _child_state(thread, spawn_filter())
    assert mode == "2"  # a seccomp filter
    assert netns != before[1]  # a network namespace of its own
    assert _own_state() == before


@pytest.mark.skipif(cgroup_support() != "v1", reason="thread-granular cgroups are v1's")
def test_child_starts_in_the_run_cgroup_and_the_thread_leaves_it() -> None:
    before = _own_state()
    thread = take(256 * 1024 * 1024, 16)
    assert thread is not None and thread.cgroup is not None
    cgroup = thread.cgroup
    try:
        _, _, cgroups = _child_state(thread, None)
        assert cgroup.pids_dir.name in cgroups and cgroup.memory_dir.name in cgroups
        assert (cgroup.pids_dir / "pids.max").read_text().strip() == "16"
        # Released: nothing of the appliance is left in the run's cgroup.
        assert cgroup.pids() == []
        assert str(os.getpid()) not in (cgroup.pids_dir / "cgroup.procs").read_text().split()
    finally:
        cgroup.remove()
    assert not cgroup.pids_dir.exists()
    assert _own_state() == before


@pytest.mark.parametrize("backend", USABLE)
async def test_runs_that_are_killed_never_reach_the_appliance(backend: str, tmp_path: Path) -> None:
    """Timeouts and output floods kill every member of the run's cgroup while the starting
    thread may still be one of them: the appliance is never among those killed."""
    before = _own_state()
    policy = default_policy(tmp_path / "home", limits=Limits(wall_seconds=1, max_output_bytes=2048))
    sandbox = Sandbox(policy, backend, workspace_root=tmp_path / "ws")
    spin = await sandbox.run([sys.executable, "-I", "-c", "while True: pass"])
    flood = await sandbox.run([sys.executable, "-I", "-c", "print('x' * 10_000_000)"])
    quick = await sandbox.run([sys.executable, "-I", "-c", "import os; print(os.getuid())"])
    assert spin.limit_hit in ("wall_time", "cpu_time")
    assert flood.limit_hit == "output" and flood.stdout_truncated
    assert quick.exit_code == 0 and quick.stdout.strip() == "65534"
    assert _own_state() == before


@pytest.mark.skipif(cgroup_support() != "v1", reason="the spare thread is cgroup v1's")
def test_the_spare_prepared_for_the_next_run_is_removed_at_exit(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import sandbox\n"
        "from sandbox import spawn\n"
        "policy = sandbox.default_policy(Path(sys.argv[1]) / 'home')\n"
        "box = sandbox.Sandbox(policy, sys.argv[2], workspace_root=Path(sys.argv[1]) / 'ws')\n"
        "print(asyncio.run(box.run(['/bin/true'])).exit_code)\n"
        "for refill in list(spawn._refills):\n"
        "    refill.join(10)\n"
        "print(spawn._spare[0].cgroup.pids_dir)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), USABLE[0]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    code, spare = done.stdout.split()
    assert code == "0" and "enclave-sandbox/run-" in spare
    assert not Path(spare).exists()
