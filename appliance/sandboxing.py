"""The sandbox as the appliance configures it: the policy from the settings, and its errors
as appliance errors."""

from __future__ import annotations

from appliance.errors import EnclaveError, SandboxRequestInvalid, SandboxUnavailable
from appliance.settings import EnclaveSettings
from sandbox import (
    Limits,
    PolicyInvalid,
    SandboxError,
    SandboxPolicy,
    WorkspaceFileMissing,
    WorkspaceFileTooLarge,
    WorkspacePathInvalid,
    default_policy,
)


def sandbox_policy(
    settings: EnclaveSettings, wall_seconds: float | None = None, memory_mb: int | None = None
) -> SandboxPolicy:
    """The policy code tools run under, from the settings: $ENCLAVE_HOME, the unseal key file
    and the configured secret paths hidden; the settings' limits (``wall_seconds`` and
    ``memory_mb`` override two of them)."""
    secrets = [str(p) for p in settings.sandbox_secret_paths]
    if settings.unseal_keyfile is not None:
        secrets.append(str(settings.unseal_keyfile))
    try:
        limits = Limits(
            wall_seconds=settings.sandbox_timeout_s if wall_seconds is None else wall_seconds,
            cpu_seconds=settings.sandbox_cpu_seconds,
            memory_mb=settings.sandbox_memory_mb if memory_mb is None else memory_mb,
            max_processes=settings.sandbox_max_processes,
            max_output_bytes=settings.sandbox_max_output_bytes,
        )
        return default_policy(settings.home, tuple(secrets), limits)
    except SandboxError as exc:
        raise as_enclave_error(exc) from exc


def as_enclave_error(exc: SandboxError) -> EnclaveError:
    """The appliance error for a sandbox-layer error (same message, stable code)."""
    if isinstance(
        exc, PolicyInvalid | WorkspacePathInvalid | WorkspaceFileMissing | WorkspaceFileTooLarge
    ):
        return SandboxRequestInvalid(exc.message, sandbox_code=exc.code)
    return SandboxUnavailable(exc.message, sandbox_code=exc.code)
