"""A real full disk for the disk-full tests: a tiny tmpfs (root mounts it, as CI runs as root)
and a filler file that takes every byte left on it."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tiny_tmpfs(parent: Path, size: str = "3m") -> Iterator[Path]:
    mount_point = parent / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"the disk-full tests mount a tmpfs and need root: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until the disk is full; the caller unlinks it."""
    filler = directory / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
