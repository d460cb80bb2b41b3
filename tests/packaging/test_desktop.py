"""`enclave desktop`: a real Qt WebEngine window (offscreen) loads the unseal page."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENCLAVE = Path(sys.executable).parent / "enclave"
FAST_KDF = {
    "ENCLAVE_KDF_MEMORY_KIB": "8192",
    "ENCLAVE_KDF_TIME_COST": "1",
    "ENCLAVE_KDF_PARALLELISM": "1",
}


def env(**extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    values.update(FAST_KDF)
    values.update(extra)
    return values


@pytest.mark.timeout(240)
def test_the_window_opens_on_the_unseal_page(tmp_path: Path, passphrase_file: Path) -> None:
    try:
        import webview  # noqa: F401
    except ImportError:
        pytest.fail("the [desktop] extra is required: `make test` installs it")
    home = tmp_path / "home"
    init = subprocess.run(
        [ENCLAVE, "init", "--home", home, "--passphrase-file", passphrase_file],
        capture_output=True, text=True, env=env(), check=False, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    done = subprocess.run(
        [ENCLAVE, "desktop", "--home", home, "--smoke-test"],
        capture_output=True, text=True, check=False, timeout=200,
        env=env(
            QT_QPA_PLATFORM="offscreen",
            QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox --disable-gpu",
            ENCLAVE_HOST="0.0.0.0",  # ignored: desktop mode binds 127.0.0.1 only
        ),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    loaded = json.loads(lines[-1])
    assert loaded["url"].startswith("http://127.0.0.1:")
    assert loaded["url"].endswith("/unseal")
    assert "Enclave" in loaded["title"]


def test_the_desktop_entry_runs_enclave_desktop() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "packaging" / "enclave.desktop")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[1:] == ["desktop"]
    assert entry["TryExec"] == entry["Exec"].split()[0]
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")
