"""Starting a run's first process from a throwaway thread that is set up like the run.

A child inherits the network namespace, control groups and seccomp filter of the *thread* that
forks it, and on Linux each of these can be given to one thread alone: ``unshare``/``setns`` of
a network namespace, a cgroup v1 ``tasks`` file (thread granular), a seccomp filter loaded
without TSYNC. So instead of a chain of helper processes in front of the backend (``/bin/sh``
writing ``cgroup.procs``, ``nsenter``, and for firejail ``--restrict-namespaces``, which
compiles a filter with two helper processes on every run), the runner hands the start of the
backend to a :class:`SpawnThread`: a fresh thread in a new network namespace (loopback up) and
in the run's cgroups, which joins the allowlist relay's namespace instead where there is one,
loads :func:`sandbox.seccomp.spawn_filter` (firejail), starts the backend and leaves the
cgroups. It ends when the run is over (:meth:`Spawned.release`) — not before: a backend's
``PR_SET_PDEATHSIG`` (bwrap's ``--die-with-parent``) fires when the thread that forked it ends.
No other thread of the appliance is touched; the thread runs nothing else.

While the thread is in the run's cgroups (from before the start until just after it), the
appliance's own memory is still charged to its own cgroup (charges follow the process, not the
thread), the memory cgroup's OOM killer only considers thread-group leaders (never the
appliance), and :meth:`sandbox.cgroups.RunCgroup.pids` never lists the appliance.

The first move of a thread into a cgroup v1 waits for an RCU grace period (~10 ms here), and a
network namespace costs ~0.5 ms: both are done ahead, off the critical path, by one spare
thread that waits for the next run (:func:`take`). Used as root with cgroup v1 (under v2 a
thread cannot leave its process's cgroup: the runner keeps its ``sh`` join there).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sandbox.cgroups import RunCgroup, cgroup_support, create_run_cgroup
from sandbox.netns import join_here, unshare_here
from sandbox.seccomp import load_on_this_thread

_T = TypeVar("_T")


class Spawned(Generic[_T]):
    """What the start function returned; :meth:`release` once the process has ended."""

    def __init__(self, value: _T, owner: SpawnThread) -> None:
        self.value = value
        self._owner = owner

    def release(self) -> None:
        """Let the thread end (without waiting: safe on an event loop; :meth:`SpawnThread.discard`
        waits for it)."""
        self._owner.release()


@dataclass
class _Job:
    start: Callable[[], Any]
    netns_fd: int | None
    seccomp: bytes | None
    future: concurrent.futures.Future[Spawned[Any]]


class SpawnThread:
    """A thread in a new network namespace and in ``cgroup`` (v1; or None), waiting to start
    one process (:meth:`start`)."""

    def __init__(self, cgroup: RunCgroup | None, new_netns: bool = True) -> None:
        self.cgroup = cgroup
        self._new_netns = new_netns
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._used = False
        self._thread = threading.Thread(target=self._body, name="enclave-spawn", daemon=True)
        self._thread.start()

    def _tasks(self) -> tuple[Any, ...]:
        return self.cgroup.thread_tasks() if self.cgroup is not None else ()

    def _body(self) -> None:
        tid = str(threading.get_native_id())
        problem: BaseException | None = None
        try:
            if self._new_netns:
                unshare_here()
            for tasks in self._tasks():
                tasks.write_text(tid)
        except BaseException as exc:
            problem = exc
        job = self._jobs.get()
        if job is None or not job.future.set_running_or_notify_cancel():
            self._leave(tid)
            return
        try:
            if problem is not None:
                raise problem
            if job.netns_fd is not None:
                join_here(job.netns_fd)
            if job.seccomp is not None:
                load_on_this_thread(job.seccomp)
            value = job.start()
        except BaseException as exc:
            self._leave(tid)
            job.future.set_exception(exc)
            return
        job.future.set_result(Spawned(value, self))
        # After the result: leaving waits for an RCU grace period too. Until then the
        # appliance is listed in the run's cgroup.procs, which RunCgroup.pids() skips.
        self._leave(tid)
        self._done.wait()

    def _leave(self, tid: str) -> None:
        # Up to the (limitless) parent of the run's cgroups, so that they hold the run alone.
        for tasks in self._tasks():
            with contextlib.suppress(OSError):
                (tasks.parent.parent / "tasks").write_text(tid)

    def _submit(
        self, start: Callable[[], _T], netns_fd: int | None, seccomp: bytes | None
    ) -> concurrent.futures.Future[Spawned[_T]]:
        if self._used:
            raise RuntimeError("a SpawnThread starts one process")
        self._used = True
        future: concurrent.futures.Future[Spawned[_T]] = concurrent.futures.Future()
        self._jobs.put(_Job(start, netns_fd, seccomp, future))
        return future

    async def start(
        self, start: Callable[[], _T], netns_fd: int | None = None, seccomp: bytes | None = None
    ) -> Spawned[_T]:
        """``start()`` (a ``Popen``) called on the thread, after it joined ``netns_fd`` (if
        given) and loaded ``seccomp`` (if given)."""
        return await asyncio.wrap_future(self._submit(start, netns_fd, seccomp))

    def start_blocking(
        self, start: Callable[[], _T], netns_fd: int | None = None, seccomp: bytes | None = None
    ) -> Spawned[_T]:
        """:meth:`start` for callers without an event loop (the backend probe)."""
        return self._submit(start, netns_fd, seccomp).result()

    def release(self) -> None:
        """Let the thread end once it has started its process (or at once, unused)."""
        if not self._used:
            self._used = True
            self._jobs.put(None)
        self._done.set()

    def discard(self) -> None:
        """:meth:`release`, and wait until the thread has ended (it is out of the run's
        cgroups then: they can be removed). Blocks: not on an event loop."""
        self.release()
        self._thread.join()


_lock = threading.Lock()
_spare: list[SpawnThread] = []
_refills: list[threading.Thread] = []
_closing = threading.Event()


def take(memory_bytes: int, max_pids: int) -> SpawnThread | None:
    """A prepared :class:`SpawnThread` whose fresh cgroup has these ceilings (the spare when
    there is one; a new spare is then prepared in the background), or None where the host
    has no cgroup v1 hierarchy we may use."""
    with _lock:
        ready = _spare.pop() if _spare else None
    if ready is None:
        ready = _fresh()
        if ready is None:
            return None
    assert ready.cgroup is not None
    try:
        ready.cgroup.set_limits(memory_bytes, max_pids)
    except OSError:
        discard_with_cgroup(ready)
        return None
    with _lock:
        _refills[:] = [t for t in _refills if t.is_alive()]
        if not _refills and not _closing.is_set():
            refill = threading.Thread(target=_refill, name="enclave-spawn-spare", daemon=True)
            _refills.append(refill)
            refill.start()
    return ready


def _fresh() -> SpawnThread | None:
    if cgroup_support() != "v1":
        return None
    cgroup = create_run_cgroup(None, None)
    if cgroup is None or cgroup.version != 1:
        if cgroup is not None:
            cgroup.remove()
        return None
    return SpawnThread(cgroup)


def _refill() -> None:
    with _lock:
        if _spare:
            return
    made = _fresh()
    if made is None:
        return
    with _lock:
        if not _spare and not _closing.is_set():
            _spare.append(made)
            return
    discard_with_cgroup(made)


def discard_with_cgroup(thread: SpawnThread) -> None:
    """End an unused thread and remove its cgroup."""
    thread.discard()
    if thread.cgroup is not None:
        thread.cgroup.remove()


@atexit.register
def _drop_spare() -> None:
    """At exit: no spare is left behind (its cgroup directory removed)."""
    _closing.set()
    with _lock:
        refills = list(_refills)
    for refill in refills:
        refill.join(5)
    with _lock:
        spares = list(_spare)
        _spare.clear()
    for thread in spares:
        with contextlib.suppress(Exception):
            discard_with_cgroup(thread)
