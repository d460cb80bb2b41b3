"""Real model servers on loopback for the provider tests (used by conftest and the tests).

``LlamaServer`` runs the real ``python -m llama_cpp.server`` on the bundled SmolLM2 model: the
OpenAI-compatible remote of the tests, which a test may kill and start again on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from models import load_catalog

SERVER_CONTEXT = 2048


def bundled_model() -> Path:
    """The default catalog model's file (SmolLM2), which must be installed."""
    path = load_catalog().default_entry().path()
    assert path is not None and path.is_file(), "the bundled SmolLM2 model must be installed"
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """A ``llama_cpp.server`` process on 127.0.0.1 that can be killed and restarted."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.model = str(bundled_model())
        self.log_path = log_dir / "llama_server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 90.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    self.model,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--n_ctx",
                    str(SERVER_CONTEXT),
                    "--n_threads",
                    "1",
                    "--verbose",
                    "false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"llama_cpp.server did not start; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
