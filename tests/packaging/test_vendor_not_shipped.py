"""The vendor's signing tool never reaches a customer: the appliance's wheel (what the
wheelhouse ships, built by `make enclave-wheel`) holds neither the ``enclave_vendor`` package
nor the ``enclave-vendor`` command, even when an earlier build left the tool in build/lib.

A few seconds (one wheel, no dependencies), so it runs in the main test run; the bundle's own
check is in test_bundle.py.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from appliance import __version__
from tests.packaging.conftest import build_env

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def test_the_enclave_wheel_carries_no_vendor_tool(tmp_path: Path) -> None:
    # What a build before packaging/vendor became its own distribution left behind:
    # setuptools packs whatever is in build/lib, so the target must start from a clean one.
    stale = ROOT / "build" / "lib" / "enclave_vendor"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "issuing.py").write_text('"""left by an old build"""\n')
    env = {k: v for k, v in build_env().items() if not k.startswith("COVERAGE")}
    built = subprocess.run(
        ["make", "--no-print-directory", "enclave-wheel", f"WHEEL_DIR={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=240, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert not stale.exists()
    wheel = tmp_path / f"enclave-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f"enclave-{__version__}.dist-info/entry_points.txt").decode()
    tops = {name.split("/")[0] for name in names}
    assert {"appliance", "engine", "sandbox", "models", "ui"} <= tops
    assert not any("enclave_vendor" in name for name in names), sorted(tops)
    assert "enclave = appliance.cli:main" in entry_points
    assert "enclave-vendor" not in entry_points
    assert "enclave_vendor" not in entry_points
