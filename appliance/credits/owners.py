"""Which process made a reservation, and whether it is still running.

A crash (kill -9, a power cut) leaves the holds of the calls in flight open. Each hold records
its process as ``host/boot id/pid namespace/pid/start time``: no other process has that
string, now or later (a reused pid has another start time, a rebooted machine another boot
id). At the next start, and at every poll of the schedule, the meter releases the holds whose
process is known to have ended, instead of waiting for their expiry. A process that cannot be
seen from here (another machine or container sharing the database) is never taken for ended:
its holds only expire.
"""

from __future__ import annotations

import os
import socket


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc); None when there is
    no such process, or only its zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # After the command name, which may hold spaces and parentheses.
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _this_machine() -> tuple[str, str, str] | None:
    """(host name, boot id, pid namespace) of this process; None without /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return socket.gethostname(), boot, namespace


_owners: dict[int, str | None] = {}


def process_owner() -> str | None:
    """This process as a reservation's owner: ``host/boot id/pid namespace/pid/start time``,
    which no other process has, now or later (None where /proc does not say: such holds
    only expire). Computed once per process."""
    pid = os.getpid()
    if pid not in _owners:
        machine, start = _this_machine(), _process_start(pid)
        owner = None
        if machine is not None and start is not None:
            owner = "/".join((*machine, str(pid), start))
        _owners[pid] = owner
    return _owners[pid]


def owner_ended(owner: str | None) -> bool:
    """Whether the process that made a hold is known to have ended: it ran on this machine,
    in this pid namespace, and either the machine has restarted since or the pid is not
    running the same process any more. A process of another machine or container cannot be
    seen, so its holds only expire."""
    parts = (owner or "").rsplit("/", 4)
    here = _this_machine()
    if len(parts) != 5 or here is None or not parts[3].isdigit():
        return False
    host, boot, namespace, pid, start = parts
    if host != here[0]:
        return False
    if boot != here[1]:
        return True
    return namespace == here[2] and _process_start(int(pid)) != start
