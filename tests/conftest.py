"""Shared fixtures: real SQLCipher homes in tmp dirs, with a fast (still real) Argon2id KDF."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import Result
from typer.testing import CliRunner

from appliance import Appliance, EnclaveSettings

PASSPHRASE = "correct horse battery staple"
# Real Argon2id with small parameters, for commands run by the tests.
FAST_KDF = {
    "ENCLAVE_KDF_MEMORY_KIB": "8192",
    "ENCLAVE_KDF_TIME_COST": "1",
    "ENCLAVE_KDF_PARALLELISM": "1",
}


def make_settings(home: Path, **overrides: object) -> EnclaveSettings:
    """Settings for a test home: real Argon2id with small parameters so tests stay fast."""
    values: dict[str, object] = {
        "home": home,
        "kdf_time_cost": 1,
        "kdf_memory_kib": 8192,
        "kdf_parallelism": 1,
        "unseal_max_attempts": 3,
    }
    values.update(overrides)
    return EnclaveSettings.model_validate(values)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's real home or ENCLAVE_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("ENCLAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))


@pytest.fixture
def home_dir(tmp_path: Path) -> Path:
    return tmp_path / "enclave-home"


@pytest.fixture
def settings(home_dir: Path) -> EnclaveSettings:
    return make_settings(home_dir)


@pytest.fixture
def appliance(settings: EnclaveSettings) -> Iterator[Appliance]:
    """An initialised, unsealed appliance on a fresh home."""
    app = Appliance(settings)
    app.initialise(PASSPHRASE)
    yield app
    app.seal()


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast KDF for commands; undo the logging setup each command's callback installs."""
    for name, value in FAST_KDF.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


def run_cli(*args: str | Path) -> Result:
    """Invoke the `enclave` command in process."""
    from appliance.cli import app as cli_app

    return CliRunner().invoke(cli_app, [str(a) for a in args])
