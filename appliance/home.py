"""The layout of ``$ENCLAVE_HOME`` and its safety checks (permissions, writability, locking)."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from pathlib import Path

from appliance.errors import HomeLocked, HomeUnwritable, NotInitialised
from appliance.store.files import storage_error

SUBDIRS = ("blobs", "vectors", "models", "workspaces", "backups", "logs")


class Home:
    """Paths inside one Enclave home directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self._lock_fd: int | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "enclave.db"

    @property
    def vault_path(self) -> Path:
        return self.root / "vault.json"

    @property
    def attempts_path(self) -> Path:
        return self.root / "unseal-attempts.json"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def is_initialised(self) -> bool:
        """A home is initialised once its vault exists."""
        return self.vault_path.exists()

    def ensure(self) -> None:
        """Create the layout (mode 0700) and prove the home is writable, else HomeUnwritable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in SUBDIRS:
                (self.root / name).mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise HomeUnwritable(
                f"Cannot create the Enclave home at {self.root}: {exc.strerror or exc}."
            ) from exc
        self.check_writable()

    def check_writable(self) -> None:
        """Write and remove a probe file; a read-only or full disk is reported specifically."""
        probe = self.root / f".probe-{secrets.token_hex(4)}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"probe")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            probe.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise storage_error(exc, "write to the home directory") from exc
            raise HomeUnwritable(
                f"The Enclave home {self.root} is not writable: {exc.strerror or exc}."
            ) from exc
        probe.unlink(missing_ok=True)

    def lock(self) -> None:
        """Hold an exclusive lock for this process's lifetime (one appliance per home)."""
        if not self.root.is_dir():
            raise NotInitialised(f"There is no Enclave home at {self.root}; run `enclave init`.")
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HomeUnwritable(f"Cannot lock {self.root}: {exc.strerror or exc}.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise HomeLocked(
                f"Another Enclave process is using {self.root}; stop it or use its API."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the home lock."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
