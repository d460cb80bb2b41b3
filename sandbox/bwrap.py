"""bubblewrap: the strongest backend. An allowlist filesystem (only system dirs, the Python
installation and the workspace exist), fresh PID/net/IPC/UTS namespaces, our seccomp filter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.confine import MB, running_as_root
from sandbox.policy import SandboxPolicy, within

WORKSPACE_MOUNT = "/workspace"


def bwrap_argv(
    policy: SandboxPolicy,
    workspace: Path,
    inner: list[str],
    seccomp_fd: int,
    hosts: Path | None = None,
    netns_ready: bool = False,
) -> list[str]:
    """The full bwrap command line for one run (``inner`` is the confined command chain;
    ``hosts`` replaces /etc/hosts: the network allowlist's names; ``netns_ready`` when bwrap
    starts in the run's own network namespace already, see :mod:`sandbox.netns`)."""
    # Resolved on the appliance's PATH (the one probed), not on the sandbox's.
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-ipc",
        "--unshare-pid",
        *([] if netns_ready else ["--unshare-net"]),
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
    ]
    if not running_as_root():
        # Unprivileged: a user namespace is how bwrap gets to mount; no capabilities inside.
        argv += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    argv += ["--seccomp", str(seccomp_fd)]
    visible: list[str] = []
    for path in policy.system_paths:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
            visible.append(path)
    if hosts is not None:
        argv += ["--ro-bind", str(hosts), "/etc/hosts"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(policy.limits.max_workspace_mb * MB), "--tmpfs"]
    argv.append("/tmp")
    for hidden in policy.all_hidden():
        if not any(within(hidden, shown) for shown in visible):
            continue  # not under anything mounted: it does not exist inside
        if os.path.isdir(hidden):
            argv += ["--tmpfs", hidden]
        elif os.path.lexists(hidden):
            argv += ["--ro-bind", "/dev/null", hidden]
    made: set[str] = set()
    for path in policy.readonly_paths:
        if not os.path.exists(path):
            continue
        # bwrap would create the missing parents with mode 0700, closed to the sandbox uid.
        for parent in reversed(Path(path).parents):
            name = str(parent)
            if name != "/" and name not in made and not any(within(name, v) for v in visible):
                argv += ["--perms", "0755", "--dir", name]
                made.add(name)
        argv += ["--ro-bind", path, path]
    argv += ["--bind", str(workspace), WORKSPACE_MOUNT, "--chdir", WORKSPACE_MOUNT]
    return [*argv, "--", *inner]
