"""Copies of the real migrations for upgrade tests: the scripts as an earlier release shipped
them."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.store.migrate import SCRIPT_LOCATION


def migrations_before(tmp_path: Path, first_left_out: str) -> Path:
    """A copy of the migrations without ``first_left_out`` (a revision number prefix such as
    ``"0015"``) and every revision after it."""
    before = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, before, ignore=shutil.ignore_patterns("__pycache__"))
    for later in (before / "versions").glob("*.py"):
        if later.name >= first_left_out:
            later.unlink()
    return before
