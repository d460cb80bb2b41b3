"""OS isolation for untrusted code: firejail and bubblewrap behind one policy.

Stands alone: imports nothing from the project. The layers above use :class:`Sandbox` (run a
command under a :class:`SandboxPolicy` in a :class:`Workspace`), :func:`detect_backends` (what
works here, and why not) and the :class:`SandboxError` codes.
"""

from sandbox.backends import BackendInfo, detect_backends
from sandbox.errors import (
    BackendUnusable,
    PolicyInvalid,
    SandboxError,
    SandboxStartFailed,
    SandboxUnavailable,
    WorkspaceFileMissing,
    WorkspaceFileTooLarge,
    WorkspacePathInvalid,
)
from sandbox.policy import Limits, SandboxPolicy, default_policy
from sandbox.runner import RunResult, Sandbox, available_backends, choose_backend
from sandbox.workspace import Workspace, WorkspaceEntry

__all__ = [
    "BackendInfo",
    "BackendUnusable",
    "Limits",
    "PolicyInvalid",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "SandboxPolicy",
    "SandboxStartFailed",
    "SandboxUnavailable",
    "Workspace",
    "WorkspaceEntry",
    "WorkspaceFileMissing",
    "WorkspaceFileTooLarge",
    "WorkspacePathInvalid",
    "available_backends",
    "choose_backend",
    "default_policy",
    "detect_backends",
]
