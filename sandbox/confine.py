"""The command chain inside the sandbox: rlimits (``prlimit``), then the drop to the
unprivileged uid with every capability gone and ``no_new_privs`` set (``setpriv``).

Limits are set by small exec'd tools rather than a ``preexec_fn`` (not safe in a threaded
process such as the appliance's server).
"""

from __future__ import annotations

import os
import shutil

from sandbox.errors import BackendUnusable
from sandbox.policy import SandboxPolicy

MB = 1024 * 1024


def running_as_root() -> bool:
    return os.geteuid() == 0


def _tool(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise BackendUnusable(f"{name} (util-linux) is required by the sandbox and is missing.")
    return path


def inner_command(policy: SandboxPolicy, argv: list[str], with_nproc: bool) -> list[str]:
    """``prlimit … -- [setpriv … --] argv``; ``with_nproc`` when no cgroup bounds processes
    (RLIMIT_NPROC counts every process of the uid, so a cgroup is the better bound)."""
    limits = policy.limits
    chain = [
        _tool("prlimit"),
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--as={limits.memory_mb * MB}:{limits.memory_mb * MB}",
        f"--fsize={limits.max_file_mb * MB}:{limits.max_file_mb * MB}",
        f"--nofile={limits.max_open_files}:{limits.max_open_files}",
        "--core=0:0",
        "--memlock=0:0",
    ]
    if with_nproc:
        chain.append(f"--nproc={limits.max_processes}:{limits.max_processes}")
    chain.append("--")
    if running_as_root():
        chain += [
            _tool("setpriv"),
            f"--reuid={policy.uid}",
            f"--regid={policy.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return chain + argv


def sandbox_env(policy: SandboxPolicy, home: str) -> dict[str, str]:
    """The whole environment the sandboxed code gets: nothing inherited from the appliance."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    env.update(dict(policy.env))
    return env
