"""The sandbox policy: what untrusted code may see, touch and spend — frozen and hashed for audit.

A policy is a value: two runs with equal policies have equal :meth:`SandboxPolicy.digest`, so an
audit record can name the exact rules a tool ran under (sha256 of a canonical JSON document).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.errors import PolicyInvalid
from sandbox.network import MAX_ENTRIES, Destination, parse_destination

# Read-only system directories every run sees (each one only if it exists on the host).
SYSTEM_PATHS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
# Always invisible inside the sandbox, whatever the caller adds.
ALWAYS_HIDDEN: tuple[str, ...] = ("/root", "/home")
# Environment names that never enter a sandbox, even when a caller asks for them.
_FORBIDDEN_ENV = re.compile(
    r"^(ENCLAVE_.*|.*_PROXY|.*TOKEN.*|.*SECRET.*|.*PASSW.*|.*_KEY|.*APIKEY.*|"
    r"LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT|PYTHONPATH|PYTHONHOME|PYTHONSTARTUP|BASH_ENV|ENV)$",
    re.IGNORECASE,
)
NETWORK_MODES = ("none", "allowlist")


@dataclass(frozen=True)
class Limits:
    """Resource ceilings for one run; hitting one ends the run and is reported by name."""

    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 64
    max_open_files: int = 256
    max_output_bytes: int = 1_000_000
    max_workspace_mb: int = 256

    def __post_init__(self) -> None:
        bounds: dict[str, tuple[float, float]] = {
            "cpu_seconds": (1, 3600),
            "wall_seconds": (0.1, 3600),
            "memory_mb": (16, 65536),
            "max_processes": (1, 4096),
            "max_file_mb": (1, 65536),
            "max_open_files": (16, 65536),
            "max_output_bytes": (1024, 256 * 1024 * 1024),
            "max_workspace_mb": (1, 65536),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not low <= value <= high:
                raise PolicyInvalid(
                    f"Sandbox limit {name}={value!r} is outside {low:g}..{high:g}.", field=name
                )


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything a backend enforces for one run.

    ``network`` is ``none`` (a fresh network namespace: the host's loopback, and so the
    appliance's own port, is unreachable) or ``allowlist``: the same empty namespace, plus TCP
    to exactly the ``network_allowlist`` entries (``host:port``) through the runner's relay
    (see :mod:`sandbox.relay`; never loopback or this machine). ``hidden_paths`` are made invisible in addition to
    /root and /home ($ENCLAVE_HOME and configured secret paths go here); ``readonly_paths``
    are shown read-only even under a hidden path (the Python installation). ``env`` is the whole
    environment the code sees besides PATH, HOME, TMPDIR and LANG.
    """

    limits: Limits = field(default_factory=Limits)
    network: str = "none"
    network_allowlist: tuple[str, ...] = ()
    hidden_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    system_paths: tuple[str, ...] = SYSTEM_PATHS
    env: tuple[tuple[str, str], ...] = ()
    uid: int = 65534
    gid: int = 65534

    def __post_init__(self) -> None:
        if self.network not in NETWORK_MODES:
            raise PolicyInvalid(
                f"Network mode {self.network!r} is not supported; use 'none' (a private network "
                "namespace with no route out) or 'allowlist' (plus TCP to listed host:port).",
                field="network",
            )
        self._check_allowlist()
        for name in ("hidden_paths", "readonly_paths", "system_paths"):
            for path in getattr(self, name):
                if not isinstance(path, str) or not os.path.isabs(path) or path == "/":
                    raise PolicyInvalid(f"{name} entries must be absolute paths below /: {path!r}")
        hidden = self.all_hidden()
        # System paths may contain a secret (masked on top); extra read-only paths may not.
        for shown in self.readonly_paths:
            for secret in hidden:
                if _within(secret, shown):
                    raise PolicyInvalid(
                        f"{shown} would expose the hidden path {secret}.", field="readonly_paths"
                    )
        for key, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or _FORBIDDEN_ENV.match(key):
                raise PolicyInvalid(f"Environment variable {key!r} may not enter the sandbox.")
        if not (0 < self.uid < 2**31 and 0 < self.gid < 2**31):
            raise PolicyInvalid("The sandbox uid and gid must be unprivileged (not 0).")

    def _check_allowlist(self) -> None:
        entries = self.network_allowlist
        if isinstance(entries, str) or not isinstance(entries, tuple):
            raise PolicyInvalid("network_allowlist must be a tuple of 'host:port' strings.")
        if self.network == "none" and entries:
            raise PolicyInvalid(
                "A network allowlist needs network='allowlist'.", field="network_allowlist"
            )
        if self.network == "allowlist" and not entries:
            raise PolicyInvalid(
                "network='allowlist' needs at least one 'host:port' entry.",
                field="network_allowlist",
            )
        if len(entries) > MAX_ENTRIES:
            raise PolicyInvalid(
                f"At most {MAX_ENTRIES} network allowlist entries.", field="network_allowlist"
            )
        # Stored normalised and sorted, so that equal allowlists hash alike.
        canonical = tuple(sorted({str(parse_destination(e)) for e in entries}))
        object.__setattr__(self, "network_allowlist", canonical)

    def destinations(self) -> tuple[Destination, ...]:
        """The allowlist entries, parsed."""
        return tuple(parse_destination(e) for e in self.network_allowlist)

    def all_hidden(self) -> tuple[str, ...]:
        """Hidden paths, the fixed ones first, normalised and without duplicates."""
        seen: dict[str, None] = {}
        for path in (*ALWAYS_HIDDEN, *self.hidden_paths):
            seen[os.path.normpath(path)] = None
        return tuple(seen)

    def canonical(self) -> dict[str, Any]:
        """The policy as plain JSON data (what the digest covers)."""
        data = asdict(self)
        data["env"] = sorted([k, v] for k, v in self.env)
        data["hidden_paths"] = list(self.all_hidden())
        if not self.network_allowlist:
            # Absent rather than empty: digests of network=none policies stay as they were.
            del data["network_allowlist"]
        return data

    def digest(self) -> str:
        """sha256 of the canonical JSON: stable across processes and releases of Python."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def with_limits(self, **changes: Any) -> SandboxPolicy:
        """A copy with some limits changed (validated)."""
        return replace(self, limits=replace(self.limits, **changes))


def _within(inner: str, outer: str) -> bool:
    inner_n, outer_n = os.path.normpath(inner), os.path.normpath(outer)
    return inner_n == outer_n or inner_n.startswith(outer_n.rstrip("/") + "/")


def python_paths() -> tuple[str, ...]:
    """The running Python's installation and environment (read-only inside the sandbox), so
    the python tool sees the same interpreter and scientific libraries as the appliance."""
    found: dict[str, None] = {}
    for raw in (sys.base_prefix, sys.prefix, sys.exec_prefix):
        path = str(Path(raw).resolve())
        if path not in SYSTEM_PATHS and not any(_within(path, s) for s in SYSTEM_PATHS):
            found[path] = None
    return tuple(found)


def default_policy(
    home: Path | None = None,
    secret_paths: tuple[str, ...] = (),
    limits: Limits | None = None,
) -> SandboxPolicy:
    """The policy tools run under: $ENCLAVE_HOME and secret paths hidden, Python visible."""
    hidden = tuple(str(Path(p).expanduser().resolve()) for p in secret_paths)
    if home is not None:
        hidden = (str(Path(home).expanduser().resolve()), *hidden)
    return SandboxPolicy(
        limits=limits or Limits(),
        hidden_paths=hidden,
        readonly_paths=python_paths(),
    )


def within(inner: str, outer: str) -> bool:
    """True when ``inner`` is ``outer`` or below it (lexically, after normalisation)."""
    return _within(inner, outer)
