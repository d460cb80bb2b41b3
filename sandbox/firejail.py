"""firejail: a blacklist filesystem (hidden paths masked, the workspace and the Python
installation whitelisted), ``--net=none``, its seccomp default list plus ours, no capabilities."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.confine import running_as_root
from sandbox.policy import SandboxPolicy, within
from sandbox.seccomp import BLOCKED_SYSCALLS

# Sockets and world-writable places a run must not reach (/tmp is private anyway).
_MASKED = ("/var/tmp", "/var/run", "/var/lib", "/var/spool", "/var/mail", "/srv", "/mnt", "/media")
# Inside the sandbox only: the tmpfs firejail puts on root's home keeps /root's 0700 mode,
# which would stop the unprivileged uid from reaching a whitelisted Python under it.
_OPEN_HOME = '[ "$(stat -f -c %T /root 2>/dev/null)" = tmpfs ] && chmod 0711 /root; exec "$@"'


def firejail_argv(policy: SandboxPolicy, workspace: Path, inner: list[str]) -> list[str]:
    """The full firejail command line for one run."""
    # Resolved on the appliance's PATH (the one probed), not on the sandbox's.
    argv = [
        shutil.which("firejail") or "firejail",
        "--quiet",
        "--noprofile",
        "--net=none",
        "--nonewprivs",
        "--seccomp=" + ",".join(_firejail_known(BLOCKED_SYSCALLS)),
        "--seccomp.block-secondary",
        "--restrict-namespaces",
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
        "--deterministic-shutdown",
    ]
    root = running_as_root()
    # setpriv (inside) needs these three to drop to the sandbox uid; it then drops them all.
    argv.append("--caps.keep=setuid,setgid,setpcap" if root else "--caps.drop=all")
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
    prefix = (
        ["/bin/sh", "-c", _OPEN_HOME, "sh"]
        if root and any(within(p, "/root") for p in whitelisted)
        else []
    )
    return [*argv, "--", *prefix, *inner]


def _run_entries() -> list[str]:
    # Everything under /run except firejail's own state: D-Bus, systemd, docker sockets…
    try:
        names = sorted(os.listdir("/run"))
    except OSError:
        return []
    return [f"/run/{n}" for n in names if n != "firejail"]


def _firejail_known(names: tuple[str, ...]) -> list[str]:
    # firejail refuses the whole list when one name is unknown to its syscall table.
    unknown = {"fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "io_uring_setup"}
    return [n for n in names if n not in unknown]
