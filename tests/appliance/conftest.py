"""Fixtures shared by the appliance tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.full_disk import tiny_tmpfs


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: a disk that fills up for real."""
    with tiny_tmpfs(tmp_path) as mount_point:
        yield mount_point
