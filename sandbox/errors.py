"""The sandbox's own errors: a stable ``code`` each, mapped by the engine and the appliance.

The sandbox imports nothing from the project, so it cannot raise the appliance's errors; the
layers above translate these codes into their own (HTTP status, translatable message).
"""

from __future__ import annotations

from typing import Any, ClassVar


class SandboxError(Exception):
    """Base class: a typed sandbox failure with a stable ``code`` and a human message."""

    code: ClassVar[str] = "sandbox_error"
    default_message: ClassVar[str] = "The sandbox failed."

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or self.default_message
        self.context = context
        super().__init__(self.message)


class SandboxUnavailable(SandboxError):
    """No isolation backend works here: code is refused, never run unsandboxed."""

    code = "sandbox_unavailable"
    default_message = (
        "No sandbox backend works on this machine (install bubblewrap or firejail); "
        "code tools are disabled rather than run unsandboxed."
    )


class BackendUnusable(SandboxError):
    """The backend asked for by name is not installed or cannot isolate a process here."""

    code = "sandbox_backend_unusable"
    default_message = "The requested sandbox backend cannot run here."


class PolicyInvalid(SandboxError):
    """A policy value is out of range or names something this release cannot enforce."""

    code = "sandbox_policy_invalid"
    default_message = "The sandbox policy is not valid."


class WorkspacePathInvalid(SandboxError):
    """A workspace path is absolute, leaves the workspace, or goes through a link."""

    code = "workspace_path_invalid"
    default_message = "The path must stay inside the workspace and may not follow links."


class WorkspaceFileMissing(SandboxError):
    code = "workspace_file_missing"
    default_message = "No such file in the workspace."


class WorkspaceFileTooLarge(SandboxError):
    code = "workspace_file_too_large"
    default_message = "The file is larger than the workspace allows."


class SandboxStartFailed(SandboxError):
    """The backend itself failed before the command ran (not the command's own failure)."""

    code = "sandbox_start_failed"
    default_message = "The sandbox could not start the command."
