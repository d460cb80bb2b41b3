"""firejail: a blacklist filesystem (hidden paths masked, the workspace and the Python
installation whitelisted), ``--net=none``, its seccomp default filter plus its namespace filter,
no capabilities.

Start-up is kept short (see docs/benchmarks.md): the runner starts firejail from a thread
already in the run's network namespace and cgroups (no ``--net=none``, whose loopback helper
sleeps 10 ms; no ``nsenter`` or ``sh`` in front: see :mod:`sandbox.spawn`); the command is
given without ``--``, which would make firejail 0.9.72 run it through ``/bin/bash -c``; there
is no ``--deterministic-shutdown``, whose SIGTERM-then-SIGKILL sweep always sleeps 100 ms —
the command runs under :data:`_REAPER` instead, which empties the sandbox as soon as the
command ends, so firejail exits at once; /root is not stat'ed on every run (see
``_OPEN_HOME``); and no filter is compiled per run. Seccomp is firejail's precompiled default
filter (``@default-nodebuggers``) plus, inherited from that thread,
:func:`sandbox.seccomp.spawn_filter`: ``unshare``, ``setns``, ``kcmp``, ``quotactl``,
``io_uring_setup`` and ``clone`` with the user/net/cgroup/time namespace flags denied (all of
:data:`sandbox.seccomp.BLOCKED_SYSCALLS` together) — in place of ``--restrict-namespaces``,
which spends two helper processes (~10 ms) compiling its filter on every run. The mount, UTS,
IPC and PID namespace flags of ``clone`` stay allowed (firejail needs them itself); they
need CAP_SYS_ADMIN, which nothing in the sandbox holds, and the one namespace an
unprivileged process could make, a user namespace, is denied. Where the runner cannot do
this (not root), ``--net=none`` and ``--restrict-namespaces`` are used as before.
tests/sandbox/test_backends.py checks the filters against firejail's own group list.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.confine import running_as_root
from sandbox.policy import SandboxPolicy, within

# Sockets and world-writable places a run must not reach (/tmp is private anyway).
_MASKED = ("/var/tmp", "/var/run", "/var/lib", "/var/spool", "/var/mail", "/srv", "/mnt", "/media")
# The first process inside, as root (before the limits and the uid drop) with CAP_KILL: runs
# the command as its child, then SIGKILLs whatever the command left in the sandbox's PID
# namespace (kill(-1) spares only itself and the namespace's init), so that firejail, which
# waits for its namespace to empty, ends as soon as the command does. The sandboxed code (an
# unprivileged uid) cannot signal it.
_REAPER = '{}"$@"; s=$?; kill -KILL -1 2>/dev/null; exit $s'
# The tmpfs firejail puts on /root to whitelist a path under it keeps /root's 0700 mode, which
# would stop the unprivileged uid from reaching a whitelisted Python there. That this /root is
# firejail's tmpfs, never the host's, is checked once by the backend probe
# (:func:`open_home_probe`), not on every run (a stat costs a process).
_OPEN_HOME = "chmod 0711 /root || exit 125; "


def firejail_argv(
    policy: SandboxPolicy,
    workspace: Path,
    inner: list[str],
    hosts: Path | None = None,
    netns_ready: bool = False,
    open_home: bool = True,
    filtered: bool = False,
) -> list[str]:
    """The full firejail command line for one run (``hosts`` replaces /etc/hosts: the
    network allowlist's names; ``netns_ready`` when firejail starts in the run's own network
    namespace already, see :mod:`sandbox.netns` — else ``--net=none`` makes one;
    ``filtered`` when firejail starts under :func:`sandbox.seccomp.spawn_filter` already, see
    :mod:`sandbox.spawn` — else ``--restrict-namespaces`` denies the namespace calls)."""
    # Resolved on the appliance's PATH (the one probed), not on the sandbox's.
    argv = [
        shutil.which("firejail") or "firejail",
        "--quiet",
        "--noprofile",
        *([] if netns_ready else ["--net=none"]),
        "--nonewprivs",
        "--seccomp",
        "--seccomp.block-secondary",
        *([] if filtered else ["--restrict-namespaces"]),
        "--private-dev",
        "--private-tmp",
        "--nogroups",
        "--nosound",
        "--no3d",
        "--nodvd",
        "--notv",
        "--nou2f",
        "--novideo",
        "--hostname=sandbox",
        "--deterministic-exit-code",
    ]
    root = running_as_root()
    # setpriv (inside) needs the first three to drop to the sandbox uid, then drops them all;
    # the reaper needs kill.
    argv.append("--caps.keep=setuid,setgid,setpcap,kill" if root else "--caps.drop=all")
    needed = [str(workspace), *policy.readonly_paths]
    whitelisted: list[str] = []
    for hidden in policy.all_hidden():
        if not os.path.lexists(hidden):
            continue
        under = [p for p in needed if within(p, hidden)]
        if under:
            whitelisted += under
        else:
            argv.append(f"--blacklist={hidden}")
    for path in (*_MASKED, *_run_entries()):
        # Directories, files and sockets alike; a link is masked through its target (firejail
        # cannot blacklist a dangling one).
        if (
            os.path.lexists(path)
            and not os.path.islink(path)
            and not any(within(p, path) for p in needed)
        ):
            argv.append(f"--blacklist={path}")
    if within(str(workspace), "/tmp"):
        whitelisted.append(str(workspace))
    for path in dict.fromkeys(whitelisted):
        argv.append(f"--whitelist={path}")
    for path in policy.readonly_paths:
        argv.append(f"--read-only={path}")
    if hosts is not None:
        argv.append(f"--hosts-file={hosts}")
    opens_home = open_home and root and any(within(p, "/root") for p in whitelisted)
    wrapper = _REAPER.format(_OPEN_HOME if opens_home else "")
    command = ["/bin/sh", "-c", wrapper, "sh", *inner]
    # No "--": with it firejail 0.9.72 runs the command through /bin/bash -c. Without it,
    # firejail's options end at the first word that does not start with "-" (/bin/sh here).
    return [*argv, *command]


def open_home_probe(policy: SandboxPolicy, workspace: Path) -> list[str] | None:
    """The firejail command that prints the filesystem type of /root as a run would see it
    (it must be ``tmpfs`` before runs may chmod it), or None when runs leave /root alone."""
    plain = firejail_argv(policy, workspace, ["/bin/true"], open_home=False)
    if plain == firejail_argv(policy, workspace, ["/bin/true"]):
        return None
    return firejail_argv(
        policy, workspace, ["/usr/bin/stat", "-f", "-c", "%T", "/root"], open_home=False
    )


def _run_entries() -> list[str]:
    # Everything under /run except firejail's own state: D-Bus, systemd, docker sockets…
    try:
        names = sorted(os.listdir("/run"))
    except OSError:
        return []
    return [f"/run/{n}" for n in names if n != "firejail"]
