"""The async runner: one command, one policy, one workspace → a :class:`RunResult`.

There is no unsandboxed path: without a working backend :class:`Sandbox` refuses to exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox.backends import BackendInfo, detect_backends
from sandbox.bwrap import WORKSPACE_MOUNT, bwrap_argv
from sandbox.cgroups import RunCgroup, create_run_cgroup
from sandbox.confine import MB, inner_command, running_as_root, sandbox_env
from sandbox.errors import BackendUnusable, SandboxStartFailed, SandboxUnavailable
from sandbox.firejail import firejail_argv
from sandbox.netns import supported as netns_supported
from sandbox.policy import SandboxPolicy
from sandbox.process import Exit, SandboxProcess, tree_rss_bytes
from sandbox.relay import NetworkRelay
from sandbox.seccomp import filter_fd, spawn_filter
from sandbox.spawn import Spawned, SpawnThread, take
from sandbox.workspace import Workspace

ALIASES = {"bwrap": "bubblewrap", "bubblewrap": "bubblewrap", "firejail": "firejail"}
# Exit statuses the backends use for their own failures before the command ran.
_START_FAILED = {"bubblewrap": (1,), "firejail": (1,)}
_QUOTA_POLL_S = 0.2


@dataclass(frozen=True)
class RunResult:
    """What one sandboxed run did. ``limit_hit`` names the ceiling that ended it, if any:
    ``wall_time``, ``cpu_time``, ``memory``, ``processes``, ``file_size``, ``output`` or
    ``disk``."""

    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    limit_hit: str | None
    cpu_seconds: float
    wall_seconds: float
    peak_rss_mb: float
    files: tuple[str, ...]
    backend: str
    policy_hash: str
    enforcement: dict[str, str] = field(default_factory=dict)
    workspace: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = list(self.files)
        return data


_backend_cache: list[BackendInfo] | None = None


def available_backends(refresh: bool = False) -> list[BackendInfo]:
    """The probed backends (probed once per process; ``refresh`` probes again)."""
    global _backend_cache
    if _backend_cache is None or refresh:
        _backend_cache = detect_backends()
    return _backend_cache


def choose_backend(name: str | None = None) -> str:
    """``name`` if it works here; with None the strongest one that works. Never a fallback to
    running without isolation: :class:`SandboxUnavailable` when nothing works."""
    infos = available_backends()
    if name is not None:
        wanted = ALIASES.get(name)
        if wanted is None:
            raise BackendUnusable(f"Unknown sandbox backend {name!r}; use bwrap or firejail.")
        for info in infos:
            if info.name == wanted:
                if not info.usable:
                    raise BackendUnusable(f"{wanted} cannot run here: {info.detail}")
                return wanted
    for info in infos:
        if info.usable:
            return info.name
    reasons = "; ".join(f"{i.name}: {i.detail}" for i in infos)
    raise SandboxUnavailable(
        "No sandbox backend works on this machine, so code tools are disabled "
        f"(nothing runs unsandboxed). {reasons}."
    )


class Sandbox:
    """Runs commands under one policy with one backend."""

    def __init__(
        self,
        policy: SandboxPolicy,
        backend: str | None = None,
        workspace_root: Path | None = None,
    ) -> None:
        self.policy = policy
        self.backend = choose_backend(backend)
        self.workspace_root = workspace_root
        if policy.network == "allowlist":
            info = next(i for i in available_backends() if i.name == self.backend)
            if not info.allowlist:
                raise BackendUnusable(f"{self.backend}: {info.allowlist_detail}.")

    def _owner(self) -> tuple[int, int] | None:
        # As root the code runs as the policy's uid, which must be able to write the workspace.
        return (self.policy.uid, self.policy.gid) if running_as_root() else None

    def new_workspace(self) -> Workspace:
        """A fresh workspace under ``workspace_root``, writable by the sandboxed code."""
        return Workspace.create(self.workspace_root, self._owner())

    def adopt_workspace(self, path: Path) -> Workspace:
        """An existing directory (e.g. an agent run's) made usable as a workspace."""
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = self._owner()
        if owner is not None:
            os.chown(path, *owner)
        return Workspace(path, owner)

    async def run(
        self,
        argv: list[str],
        *,
        files: Mapping[str, bytes] | None = None,
        stdin: bytes | None = None,
        workspace: Workspace | None = None,
        keep_workspace: bool = False,
    ) -> RunResult:
        """Run ``argv`` with ``files`` placed in a workspace; the workspace is removed after
        the run unless the caller passed its own or asked to keep it."""
        owned = workspace is None
        space = workspace or self.new_workspace()
        try:
            if files:
                space.write_inputs(files)
            result = await self._run_in(argv, space, stdin)
        except BaseException:
            if owned and not keep_workspace:
                await asyncio.to_thread(space.remove)
            raise
        if owned and not keep_workspace:
            await asyncio.to_thread(space.remove)
            return result
        return RunResult(**{**asdict(result), "workspace": str(space.path)})

    def _launcher(self) -> tuple[SpawnThread | None, RunCgroup | None]:
        """The thread that will start the backend (as root, see :mod:`sandbox.spawn`: a
        prepared one with the run's cgroup v1 when there is one) and the run's cgroup."""
        limits = self.policy.limits
        memory, pids = limits.memory_mb * MB, limits.max_processes + 8
        if not running_as_root() or netns_supported() is not None:
            return None, create_run_cgroup(memory, pids)
        launcher = take(memory, pids)
        if launcher is not None:
            return launcher, launcher.cgroup
        return SpawnThread(None), create_run_cgroup(memory, pids)

    def _command(
        self,
        argv: list[str],
        space: Workspace,
        nproc: bool,
        fds: list[int],
        relay: NetworkRelay | None,
        threaded: bool,
    ) -> list[str]:
        inner = inner_command(self.policy, argv, with_nproc=nproc)
        hosts = relay.hosts_path if relay is not None else None
        # Started from a SpawnThread, the backend is in the run's network namespace already
        # (and firejail under the spawn filter).
        if self.backend == "bubblewrap":
            fd = filter_fd()
            fds.append(fd)
            return bwrap_argv(self.policy, space.path, inner, fd, hosts, threaded)
        return firejail_argv(self.policy, space.path, inner, hosts, threaded, filtered=threaded)

    async def _run_in(self, argv: list[str], space: Workspace, stdin: bytes | None) -> RunResult:
        launcher, cgroup = self._launcher()
        fds: list[int] = []
        before = space.snapshot()
        relay: NetworkRelay | None = None
        try:
            # As root the run's network namespace is made by the appliance, not by the
            # backend, where that saves time (firejail) or is needed (the allowlist's relay):
            # see sandbox.netns and sandbox.spawn.
            if self.policy.network == "allowlist":
                relay = await NetworkRelay.prepare(self.policy)
            command = self._command(argv, space, cgroup is None, fds, relay, launcher is not None)
            if cgroup is not None and (launcher is None or launcher.cgroup is None):
                command = ["/bin/sh", "-c", cgroup.join_script(), "sh", *command]
            stdin_fd = os.memfd_create("enclave-stdin", 0)
            fds.append(stdin_fd)
            if stdin:
                os.write(stdin_fd, stdin)
                os.lseek(stdin_fd, 0, os.SEEK_SET)
            home = WORKSPACE_MOUNT if self.backend == "bubblewrap" else str(space.path)
            start = _Start(launcher, relay, self.backend == "firejail")
            outcome = await self._supervise(command, space, home, stdin_fd, fds, cgroup, start)
            after = space.snapshot()
            changed = tuple(sorted(p for p, meta in after.items() if before.get(p) != meta))
            # Read the cgroup's counters before it is removed.
            network = relay.summary() if relay is not None else "none (private namespace)"
            return _result(outcome, changed, self.backend, self.policy, cgroup, network)
        finally:
            if launcher is not None:
                await asyncio.to_thread(launcher.discard)
            if relay is not None:
                await relay.close()
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def _supervise(
        self,
        command: list[str],
        space: Workspace,
        home: str,
        stdin_fd: int,
        fds: list[int],
        cgroup: RunCgroup | None,
        launch: _Start,
    ) -> _Outcome:
        limits = self.policy.limits
        hit: list[str] = []
        holder: list[SandboxProcess] = []

        def stop(reason: str) -> None:
            # Called on the event loop: one quick round of kills; the thorough sweep follows
            # once the backend has exited.
            hit.append(reason)
            for proc in holder:
                proc.kill_tree()
            if cgroup is not None:
                cgroup.kill_all(rounds=1)

        def start() -> SandboxProcess:
            return SandboxProcess(
                command,
                sandbox_env(self.policy, home),
                space.path,
                stdin_fd,
                tuple(fds),
                limits.max_output_bytes,
                lambda: stop("output"),
            )

        started = time.monotonic()
        spawned: Spawned[SandboxProcess] | None = None
        try:
            if launch.thread is None:
                proc = start()
            else:
                spawned = await _spawn_guarded(launch, start)
                proc = spawned.value
        except OSError as exc:
            raise SandboxStartFailed(f"{command[0]} could not be started: {exc}") from exc
        try:
            return await self._follow(proc, space, cgroup, stop, hit, holder, started)
        finally:
            if spawned is not None:
                spawned.release()

    async def _follow(
        self,
        proc: SandboxProcess,
        space: Workspace,
        cgroup: RunCgroup | None,
        stop: Callable[[str], None],
        hit: list[str],
        holder: list[SandboxProcess],
        started: float,
    ) -> _Outcome:
        limits = self.policy.limits
        holder.append(proc)
        peak: list[int] = [0]
        sample = None if cgroup is not None else proc.pid
        watch = asyncio.ensure_future(
            _watch(space, limits.max_workspace_mb * MB, stop, sample, peak)
        )
        waiter = asyncio.ensure_future(proc.wait())
        try:
            await proc.attach()
            done, _ = await asyncio.wait({waiter}, timeout=limits.wall_seconds)
            if not done:
                stop("wall_time")
            exit_info = await asyncio.shield(waiter)
        except BaseException:
            stop("cancelled")
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(waiter), 10)
            proc.close()
            raise
        finally:
            watch.cancel()
        # The backend is gone; whatever it left behind (it should be nothing: the PID namespace
        # died with it) goes now — every cgroup member, or without a cgroup every descendant.
        if cgroup is not None:
            await asyncio.to_thread(cgroup.kill_all)
        else:
            await asyncio.to_thread(proc.kill_tree, 3)
        await proc.drain(2.0)
        wall = time.monotonic() - started
        assert proc.stdout is not None and proc.stderr is not None
        outcome = _Outcome(exit_info, wall, proc.stdout.text(), proc.stderr.text(), hit)
        outcome.peak_sampled = peak[0]
        outcome.stdout_truncated = proc.stdout.truncated
        outcome.stderr_truncated = proc.stderr.truncated
        proc.close()
        return outcome


@dataclass(frozen=True)
class _Start:
    """How the backend is started: from ``thread`` (None: the event loop's thread), in the
    allowlist relay's namespace, under the spawn filter (firejail)."""

    thread: SpawnThread | None
    relay: NetworkRelay | None
    filtered: bool


async def _spawn_guarded(
    launch: _Start, start: Callable[[], SandboxProcess]
) -> Spawned[SandboxProcess]:
    """The start on the launch thread; a process started after the caller was cancelled is
    killed."""
    assert launch.thread is not None
    netns_fd = launch.relay.netns.fd if launch.relay is not None else None
    seccomp = spawn_filter() if launch.filtered else None
    task = asyncio.ensure_future(launch.thread.start(start, netns_fd, seccomp))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:

        def abandon(done: asyncio.Future[Spawned[SandboxProcess]]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            spawned = done.result()
            spawned.value.kill_tree()
            spawned.value.close()
            spawned.release()

        task.add_done_callback(abandon)
        raise


async def _watch(
    space: Workspace,
    quota: int,
    stop: Callable[[str], None],
    sample_pid: int | None,
    peak: list[int],
) -> None:
    """Every 0.2 s: the workspace quota, and (without a cgroup) the tree's resident memory."""
    while True:
        await asyncio.sleep(_QUOTA_POLL_S)
        usage = await asyncio.to_thread(space.usage_bytes)
        if sample_pid is not None:
            peak[0] = max(peak[0], await asyncio.to_thread(tree_rss_bytes, sample_pid))
        if usage > quota:
            stop("disk")
            return


@dataclass
class _Outcome:
    exit: Exit
    wall: float
    stdout: str
    stderr: str
    hit: list[str]
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    peak_sampled: int = 0


def _limit_hit(outcome: _Outcome, policy: SandboxPolicy, cgroup: RunCgroup | None) -> str | None:
    if outcome.hit and outcome.hit[0] != "wall_time":
        return outcome.hit[0]
    if outcome.hit:
        # A run stalled by a ceiling (a fork bomb retrying forks) names that ceiling.
        if cgroup is not None and cgroup.pids_limit_hit():
            return "processes"
        if cgroup is not None and cgroup.memory_limit_hit():
            return "memory"
        return "wall_time"
    code, sig = outcome.exit.exit_code, outcome.exit.signal
    # The backends report a child killed by signal N as exit status 128 + N.
    if sig is None and code is not None and code > 128:
        sig = code - 128
    if sig == signal.SIGXCPU or (
        sig == signal.SIGKILL and outcome.exit.cpu_seconds >= policy.limits.cpu_seconds - 0.05
    ):
        return "cpu_time"
    if sig == signal.SIGXFSZ or "File too large" in outcome.stderr:
        return "file_size"
    if cgroup is not None and cgroup.pids_limit_hit():
        return "processes"
    if cgroup is not None and cgroup.memory_limit_hit():
        return "memory"
    if code not in (0, None) and (
        "MemoryError" in outcome.stderr or "Cannot allocate memory" in outcome.stderr
    ):
        return "memory"
    # Without a pids cgroup, RLIMIT_NPROC shows as failed forks (the shell may still exit 0).
    if "Resource temporarily unavailable" in outcome.stderr and (
        "fork" in outcome.stderr or "BlockingIOError" in outcome.stderr
    ):
        return "processes"
    return None


def _result(
    outcome: _Outcome,
    files: tuple[str, ...],
    backend: str,
    policy: SandboxPolicy,
    cgroup: RunCgroup | None,
    network: str,
) -> RunResult:
    # rusage's maxrss cannot be used: a forked child starts with the appliance's own high-water
    # mark. The cgroup's peak is what the memory limit counts (resident pages and page cache);
    # without one, the tree's resident set sampled every 0.2 s.
    peak = (cgroup.peak_memory_bytes() or 0) if cgroup is not None else outcome.peak_sampled
    # The cgroup also counts processes that died unreaped with the PID namespace.
    cpu = outcome.exit.cpu_seconds
    if cgroup is not None:
        cpu = max(cpu, cgroup.cpu_seconds() or 0.0)
    code = outcome.exit.exit_code
    sig = outcome.exit.signal
    if sig is None and code is not None and code > 128:
        sig = code - 128
    enforcement = {
        "processes": f"cgroup v{cgroup.version}" if cgroup else "RLIMIT_NPROC",
        "memory": f"RLIMIT_AS + cgroup v{cgroup.version}" if cgroup else "RLIMIT_AS",
        "uid": str(policy.uid) if running_as_root() else "caller (user namespace)",
        "network": network,
    }
    return RunResult(
        exit_code=code,
        signal=sig,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        stdout_truncated=outcome.stdout_truncated,
        stderr_truncated=outcome.stderr_truncated,
        limit_hit=_limit_hit(outcome, policy, cgroup),
        cpu_seconds=round(cpu, 4),
        wall_seconds=round(outcome.wall, 4),
        peak_rss_mb=round(peak / MB, 2),
        files=files,
        backend=backend,
        policy_hash=policy.digest(),
        enforcement=enforcement,
    )
