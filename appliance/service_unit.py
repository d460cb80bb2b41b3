"""The systemd unit that runs Enclave as a service (``enclave service install``).

The unit is plain text rendered from :class:`ServiceSpec`; every hardening option is chosen so
the tool sandbox still works inside it (bubblewrap needs unprivileged user namespaces, firejail
is setuid root), and the reason for each option is written beside it in the unit itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidRequest

UNIT_NAME = "enclave.service"
UNIT_DIR = Path("/etc/systemd/system")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
BACKENDS = ("bwrap", "firejail")


@dataclass(frozen=True)
class ServiceSpec:
    """What the unit runs and as whom."""

    executable: Path
    home: Path = Path("/var/lib/enclave")
    user: str = "enclave"
    host: str = "127.0.0.1"
    port: int = 8080
    keyfile: Path | None = None
    backend: str = "bwrap"

    def validate(self) -> None:
        """Refuse values that would make a broken or unsafe unit."""
        if not _USER.match(self.user) or self.user == "root":
            raise InvalidRequest(
                f"Service user {self.user!r}: use a dedicated system account name (not root)."
            )
        if self.backend not in BACKENDS:
            raise InvalidRequest(f"Sandbox backend {self.backend!r}: use bwrap or firejail.")
        for label, path in (("executable", self.executable), ("home", self.home)):
            if not path.is_absolute():
                raise InvalidRequest(f"The {label} path {path} must be absolute.")
        if self.keyfile is not None and not self.keyfile.is_absolute():
            raise InvalidRequest(f"The key file path {self.keyfile} must be absolute.")
        if not 1 <= self.port <= 65535:
            raise InvalidRequest(f"Port {self.port} is not a TCP port.")
        for value in (str(self.executable), str(self.home), self.host, str(self.keyfile or "")):
            if any(c in value for c in "\n\r\"'%$\\"):
                raise InvalidRequest(f"{value!r} holds characters a unit file cannot carry.")


def render_unit(spec: ServiceSpec) -> str:
    """The unit file's text for ``spec`` (validated first)."""
    spec.validate()
    command = shlex.join(
        [
            str(spec.executable),
            "run",
            "--home",
            str(spec.home),
            "--host",
            spec.host,
            "--port",
            str(spec.port),
        ]
    )
    keyfile = (
        f"Environment=ENCLAVE_UNSEAL_KEYFILE={spec.keyfile}\n"
        if spec.keyfile is not None
        else (
            "# Unattended unseal: create a key file (`enclave keyfile --out K`), chown it to the\n"
            "# service user with mode 0600, and uncomment:\n"
            "#Environment=ENCLAVE_UNSEAL_KEYFILE=/etc/enclave/unseal.key\n"
        )
    )
    read_write = f"ReadWritePaths={spec.home}\n"
    if spec.keyfile is not None:
        read_write += f"ReadOnlyPaths={spec.keyfile}\n"
    return f"""\
# {UNIT_NAME}: written by `enclave service install`. Re-run it after an upgrade to refresh.
[Unit]
Description=Enclave offline AI agent appliance
# Nothing is fetched from any network: the unit only waits for local interfaces to serve on.
After=network.target

[Service]
Type=simple
User={spec.user}
Group={spec.user}
Environment=ENCLAVE_HOME={spec.home}
Environment=ENCLAVE_SANDBOX_BACKEND={spec.backend}
{keyfile}ExecStart={command}
# A crash restarts the service; a clean stop (systemctl stop) does not. The appliance comes
# back sealed unless a key file is configured above.
Restart=on-failure
RestartSec=5s
# SIGTERM lets the server seal (drop the data key) and close the database cleanly.
KillSignal=SIGTERM
TimeoutStopSec=30s
# Logs: the appliance rotates its own files in $ENCLAVE_HOME/logs (ENCLAVE_LOG_MAX_BYTES,
# ENCLAVE_LOG_BACKUPS), so no logrotate rule is needed; stdout/stderr go to the journal,
# whose retention is journald's (SystemMaxUse= in journald.conf).

# --- Hardening, compatible with the tool sandbox -------------------------------------------
# Files the service creates are private to its user.
UMask=0077
# The data directory is the only place it writes; /usr, /etc and /boot are read-only.
ProtectSystem=strict
{read_write}# Users' home directories are invisible (the Enclave home is not under /home).
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
# The sandbox limits each tool run with its own cgroup: the service's subtree is delegated.
Delegate=yes
# Deliberately NOT set, because each would break the tool sandbox:
#   RestrictNamespaces=     bubblewrap and firejail create user/mount/pid/net namespaces.
#   PrivateUsers=           a nested user-namespace map breaks firejail's setuid start.
#   SystemCallFilter=       bwrap needs mount, pivot_root, unshare and setns; the sandbox
#                           installs its own seccomp filter for the code it runs.
#   MemoryDenyWriteExecute= libffi (ctypes) trampolines need writable+executable pages.
#   ProtectControlGroups=   the sandbox writes the delegated cgroup subtree.
{_privileges(spec.backend)}
[Install]
WantedBy=multi-user.target
"""


def _privileges(backend: str) -> str:
    if backend == "firejail":
        return (
            "# firejail is setuid root. systemd implies NoNewPrivileges=yes for a non-root service\n"
            "# with any seccomp-based option (PrivateDevices=, LockPersonality=, RestrictRealtime=,\n"
            "# RestrictSUIDSGID=, RestrictAddressFamilies=, ProtectClock=, ProtectKernelModules=,\n"
            "# ProtectKernelLogs=), and no new privileges stops a setuid program: none is set here.\n"
            "# Prefer the bwrap backend where user namespaces are enabled.\n"
            "NoNewPrivileges=no\n"
            "# firejail keeps its run state under /run/firejail.\n"
            "ReadWritePaths=-/run/firejail\n"
        )
    return (
        "# bubblewrap runs unprivileged (user namespaces): the service can gain no privilege\n"
        "# (no setuid) and holds no capability, so the seccomp-based options are safe to add.\n"
        "NoNewPrivileges=yes\n"
        "CapabilityBoundingSet=\n"
        "AmbientCapabilities=\n"
        "PrivateDevices=yes\n"
        "ProtectKernelModules=yes\n"
        "ProtectKernelLogs=yes\n"
        "ProtectClock=yes\n"
        "ProtectHostname=yes\n"
        "LockPersonality=yes\n"
        "RestrictRealtime=yes\n"
        "RestrictSUIDSGID=yes\n"
        "SystemCallArchitectures=native\n"
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n"
    )


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """The unit's ``[Section] Key=value`` lines (comments dropped; a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"not a unit file line: {raw!r}")
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections
