"""Find the sandbox tools (bubblewrap, firejail) and prove each can start an isolated process."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

# Each probe starts /bin/true with no network and a read-only root; exit 0 means the tool works
# on this kernel (user namespaces, seccomp) and not merely that the binary exists.
_PROBES: dict[str, tuple[list[str], list[str]]] = {
    "bubblewrap": (
        ["bwrap", "--version"],
        ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--", "/bin/true"],
    ),
    "firejail": (
        ["firejail", "--version"],
        ["firejail", "--quiet", "--noprofile", "--net=none", "--", "/bin/true"],
    ),
}


@dataclass(frozen=True)
class BackendInfo:
    """What one isolation backend can do on this machine."""

    name: str
    path: str | None
    version: str | None
    usable: bool
    detail: str


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def probe_backend(name: str, timeout: float = 10.0) -> BackendInfo:
    """Locate ``name`` (``bubblewrap`` or ``firejail``) and run its isolation probe."""
    version_argv, probe_argv = _PROBES[name]
    path = shutil.which(version_argv[0])
    if path is None:
        return BackendInfo(name, None, None, False, f"{version_argv[0]} is not installed")
    try:
        ver = _run(version_argv, timeout)
        version = (
            (ver.stdout or ver.stderr).strip().splitlines()[0]
            if (ver.stdout or ver.stderr)
            else None
        )
        probe = _run(probe_argv, timeout)
    except subprocess.TimeoutExpired:
        return BackendInfo(name, path, None, False, f"{name} did not answer within {timeout:.0f} s")
    except OSError as exc:
        return BackendInfo(name, path, None, False, f"{name} cannot be started: {exc.strerror}")
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        why = reason[-1] if reason else f"exit status {probe.returncode}"
        return BackendInfo(name, path, version, False, f"isolation probe failed: {why}")
    return BackendInfo(
        name, path, version, True, "isolated process started (no network, read-only root)"
    )


def detect_backends(timeout: float = 10.0) -> list[BackendInfo]:
    """Every known backend, usable or not, in order of preference."""
    return [probe_backend(name, timeout) for name in _PROBES]
