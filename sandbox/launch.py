"""Long-running confined processes that a library starts itself (e.g. an MCP stdio server
launched by the MCP SDK): the command line and environment that put a program in the sandbox.

:meth:`Sandbox.run <sandbox.runner.Sandbox.run>` supervises one-shot commands; a server whose
stdin/stdout another library owns only needs the same confinement wrapped around its argv. The
seccomp filter reaches bwrap through a file opened on a fixed descriptor by ``/bin/sh`` (the
spawning library closes inherited descriptors), so no descriptor has to survive the spawn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sandbox.bwrap import WORKSPACE_MOUNT, bwrap_argv
from sandbox.confine import inner_command, sandbox_env
from sandbox.errors import PolicyInvalid
from sandbox.firejail import firejail_argv
from sandbox.policy import SandboxPolicy
from sandbox.seccomp import compiled_filter
from sandbox.workspace import Workspace

# The descriptor bwrap reads the seccomp program from.
SECCOMP_FD = 9


class Launcher:
    """Wraps argv in the sandbox for one backend and policy; the workspace is the process's
    only writable directory and its home."""

    def __init__(self, policy: SandboxPolicy, backend: str, workspace: Workspace) -> None:
        if policy.network != "none":
            # The allowlist relay lives in Sandbox.run's supervision; a process another
            # library spawns has none.
            raise PolicyInvalid(
                "Long-running sandboxed processes get no network: the allowlist is for runs.",
                field="network",
            )
        self.policy = policy
        self.backend = backend
        self.workspace = workspace
        self._filter: Path | None = None

    def command(
        self, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """``(argv, env)`` that start ``argv`` confined. ``extra_env`` adds variables (the
        policy's scrubbing still applies to everything else)."""
        # A cgroup cannot be joined by a process another library spawns: RLIMIT_NPROC bounds it.
        inner = inner_command(self.policy, argv, with_nproc=True)
        if self.backend == "bubblewrap":
            wrapped = bwrap_argv(self.policy, self.workspace.path, inner, SECCOMP_FD)
            command = [
                "/bin/sh",
                "-c",
                f'exec "$@" {SECCOMP_FD}<"$0"',
                str(self._filter_file()),
                *wrapped,
            ]
            home = WORKSPACE_MOUNT
        else:
            command = firejail_argv(self.policy, self.workspace.path, inner)
            home = str(self.workspace.path)
        env = sandbox_env(self.policy, home)
        env.update(extra_env or {})
        return command, env

    def _filter_file(self) -> Path:
        if self._filter is None or not self._filter.exists():
            folder = Path(tempfile.mkdtemp(prefix="enclave-seccomp-"))
            path = folder / "filter.bpf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(compiled_filter())
            self._filter = path
        return self._filter
