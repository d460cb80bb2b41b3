"""One sandboxed process on the asyncio loop: capped output capture, exit with resource use,
and a kill that reaches the whole tree.

The process is started with ``subprocess.Popen`` (``start_new_session``; no ``preexec_fn``) so
that ``os.wait4`` can collect its rusage — the CPU time of everything it reaped — which
asyncio's own subprocess API does not expose. Its exit is awaited through a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class CappedReader(asyncio.Protocol):
    """Keeps the first ``cap`` bytes of a pipe; past that it flags truncation and reports."""

    def __init__(self, cap: int, on_overflow: Callable[[], None]) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.on_overflow = on_overflow
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        room = self.cap - self.kept
        if len(data) > room:
            if room > 0:
                self.chunks.append(data[:room])
                self.kept += room
            if not self.truncated:
                self.truncated = True
                self.on_overflow()
            return
        self.chunks.append(data)
        self.kept += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


@dataclass
class Exit:
    status: int
    # User + system time of the tree (the processes the backend reaped count too).
    cpu_seconds: float

    @property
    def exit_code(self) -> int | None:
        return os.waitstatus_to_exitcode(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


class SandboxProcess:
    """A started process; call :meth:`wait`, :meth:`kill_tree` and :meth:`close`."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        stdin_fd: int,
        pass_fds: tuple[int, ...],
        output_cap: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self.popen = subprocess.Popen(
            argv,
            stdin=stdin_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            pass_fds=pass_fds,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.popen.pid
        self.output_cap = output_cap
        self.on_overflow = on_overflow
        self.stdout: CappedReader | None = None
        self.stderr: CappedReader | None = None
        self._pidfd = os.pidfd_open(self.pid)
        self.exit: Exit | None = None

    async def attach(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        _, out = await loop.connect_read_pipe(
            lambda: CappedReader(self.output_cap, self.on_overflow), self.popen.stdout
        )
        _, err = await loop.connect_read_pipe(
            lambda: CappedReader(self.output_cap, self.on_overflow), self.popen.stderr
        )
        assert isinstance(out, CappedReader) and isinstance(err, CappedReader)
        self.stdout, self.stderr = out, err

    async def wait(self) -> Exit:
        """Until the process exits; then reap it with its rusage."""
        if self.exit is not None:
            return self.exit
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(self._pidfd, readable)
        try:
            await done
        finally:
            loop.remove_reader(self._pidfd)
        _, status, usage = os.wait4(self.pid, 0)
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.exit = Exit(status, usage.ru_utime + usage.ru_stime)
        return self.exit

    async def drain(self, timeout: float) -> None:
        """Let the pipes deliver what the tree wrote (they close when the last writer dies)."""
        waiters = [r.closed for r in (self.stdout, self.stderr) if r is not None]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiters), timeout)

    def kill_tree(self, rounds: int = 1) -> None:
        """SIGKILL the session and every descendant found in /proc (a PID namespace's init
        among them: its death takes the whole namespace, setsid'd and double-forked too).
        ``rounds=1`` never sleeps (safe on the event loop); more rounds belong in a thread."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for attempt in range(rounds):
            family = descendants(self.pid)
            for pid in family:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if not family:
                break
            if attempt + 1 < rounds:
                time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._pidfd)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children before grandchildren)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and every descendant right now (0 for gone processes)."""
    total = 0
    for pid in (root, *descendants(root)):
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total
