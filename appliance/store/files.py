"""Durable file writes: temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from appliance.errors import DiskFull, StorageError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def storage_error(exc: OSError, action: str) -> StorageError:
    """Map an OSError met while trying to ``action`` to our typed error (disk full is its own)."""
    if exc.errno in _NO_SPACE:
        return DiskFull(action=action)
    return StorageError(f"Cannot {action}: {exc.strerror or exc}.", action=action)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, f"write {path.name}") from exc
