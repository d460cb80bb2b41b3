"""Fixtures shared by the licensing tests: a test vendor issuer and an appliance trusting it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


@pytest.fixture
def appliance(home_dir: Path, issuer: Any) -> Iterator[Appliance]:
    app = open_appliance(licensed_settings(home_dir, issuer))
    yield app
    app.seal()
