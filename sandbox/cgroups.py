"""Per-run control groups: a memory and a process ceiling for the whole tree, its peak memory,
and a way to kill every process in it (also the ones that double-forked or called setsid).

Used where the host lets us: cgroup v2 with a writable hierarchy, or cgroup v1's ``memory`` and
``pids`` controllers when running as root (this machine mounts v1). Elsewhere the runner falls
back to rlimits and a process-tree walk, and says so in the result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PARENT = "enclave-sandbox"


@dataclass
class RunCgroup:
    """The cgroup directories of one run (one per v1 controller, or one v2 directory)."""

    version: int
    memory_dir: Path
    pids_dir: Path
    cpu_dir: Path | None = None

    @property
    def dirs(self) -> list[Path]:
        return sorted({self.memory_dir, self.pids_dir, *([self.cpu_dir] if self.cpu_dir else [])})

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that ran in the cgroup (reaped or not)."""
        if self.cpu_dir is None:
            return None
        if self.version == 1:
            nanos = _read_int(self.cpu_dir / "cpuacct.usage")
            return None if nanos is None else nanos / 1e9
        micros = _read_keyed(self.cpu_dir / "cpu.stat").get("usage_usec")
        return None if micros is None else micros / 1e6

    def set_limits(self, memory_bytes: int, max_pids: int) -> None:
        """The memory (no swap) and process ceilings (a fresh cgroup has none)."""
        if self.version == 2:
            (self.memory_dir / "memory.max").write_text(str(memory_bytes))
        else:
            (self.memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (self.memory_dir / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (self.pids_dir / "pids.max").write_text(str(max_pids))

    def thread_tasks(self) -> tuple[Path, ...]:
        """cgroup v1: the ``tasks`` files a thread joins the run's cgroups through (whatever it
        forks starts inside, see :mod:`sandbox.spawn`); empty under v2, where a thread cannot
        leave its process's cgroup alone (:meth:`join_script` then)."""
        return tuple(d / "tasks" for d in self.dirs) if self.version == 1 else ()

    def join_script(self) -> str:
        """A ``sh -c`` snippet that moves the shell into the cgroup before it execs the rest."""
        targets = " ".join(f"'{d / 'cgroup.procs'}'" for d in self.dirs)
        return f'for f in {targets}; do echo $$ > "$f" || exit 125; done; exec "$@"'

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (directory / "cgroup.procs").read_text().split())
        # Never the appliance itself (under v1 a process is listed while any of its threads
        # is a member: the thread that starts a run is one for a moment, see sandbox.spawn).
        found.discard(os.getpid())
        return sorted(found)

    def kill_all(self, rounds: int = 50) -> None:
        """SIGKILL every member until none is left (new forks are caught by the next round).
        ``rounds=1`` never sleeps (safe on the event loop); more rounds belong in a thread."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.pids_dir / "cgroup.kill").write_text("1")
        for attempt in range(rounds):
            members = self.pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if attempt + 1 < rounds:
                # A killed member is usually gone within a millisecond (bwrap's PID 1 still
                # exiting after bwrap returned, say); a fork bomb gets the longer waits.
                time.sleep(min(0.01, 0.001 * 2**attempt))

    def peak_memory_bytes(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return _read_int(self.memory_dir / name)

    def memory_limit_hit(self) -> bool:
        if self.version == 1:
            return (_read_int(self.memory_dir / "memory.failcnt") or 0) > 0
        events = _read_keyed(self.memory_dir / "memory.events")
        return events.get("max", 0) > 0 or events.get("oom_kill", 0) > 0

    def pids_limit_hit(self) -> bool:
        return _read_keyed(self.pids_dir / "pids.events").get("max", 0) > 0

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs:
            for _ in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def _v2_available() -> bool:
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if not controllers.exists():
        return False
    wanted = {"memory", "pids"}
    return wanted <= set(controllers.read_text().split()) and os.access(CGROUP_ROOT, os.W_OK)


def _v1_available() -> bool:
    return all(
        os.access(CGROUP_ROOT / c, os.W_OK) and (CGROUP_ROOT / c / "cgroup.procs").exists()
        for c in ("memory", "pids")
    )


def cgroup_support() -> str | None:
    """``v2``, ``v1`` or None: what :func:`create_run_cgroup` can use on this host."""
    if _v2_available():
        return "v2"
    if _v1_available():
        return "v1"
    return None


def create_run_cgroup(memory_bytes: int | None, max_pids: int | None) -> RunCgroup | None:
    """A fresh cgroup with the two ceilings set (None: set later, see
    :meth:`RunCgroup.set_limits`), or None where the host does not allow it."""
    support = cgroup_support()
    name = f"run-{uuid.uuid4().hex[:12]}"
    try:
        if support == "v2":
            parent = CGROUP_ROOT / _PARENT
            parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory +pids")
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
            run = parent / name
            run.mkdir()
            (run / "memory.swap.max").write_text("0")
            group = RunCgroup(2, run, run, run)
        elif support == "v1":
            mem = CGROUP_ROOT / "memory" / _PARENT / name
            pids = CGROUP_ROOT / "pids" / _PARENT / name
            mem.mkdir(parents=True)
            pids.mkdir(parents=True)
            cpu: Path | None = CGROUP_ROOT / "cpuacct" / _PARENT / name
            try:
                assert cpu is not None
                cpu.mkdir(parents=True)
            except OSError:
                cpu = None
            group = RunCgroup(1, mem, pids, cpu)
        else:
            return None
        if memory_bytes is not None and max_pids is not None:
            group.set_limits(memory_bytes, max_pids)
        return group
    except OSError:
        return None
