"""Targets for the escape suite: a fake $ENCLAVE_HOME with canary secrets, canaries in /root,
/home and the environment, and real listeners (TCP on 127.0.0.1 and ::1, UNIX sockets) that
count every connection they get."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox import detect_backends

USABLE = [b.name for b in detect_backends() if b.usable]


class Listener:
    """Accepts connections on one socket in a thread and counts them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connections = 0
        sock.listen(16)
        sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Targets:
    canary: str
    home: Path
    host_file: Path
    other_home: Path
    root_file: Path
    unix_path: Path
    abstract: str
    marker: str
    listeners: list[Listener] = field(default_factory=list)

    @property
    def port4(self) -> int:
        return int(self.listeners[0].sock.getsockname()[1])

    @property
    def port6(self) -> int:
        return int(self.listeners[1].sock.getsockname()[1])

    def fingerprint(self) -> str:
        """A digest of everything outside the sandbox the attacks aim at."""
        digest = hashlib.sha256()
        for path in sorted(self.home.rglob("*")):
            if "workspaces" in path.relative_to(self.home).parts or path.is_socket():
                continue
            digest.update(str(path).encode())
            if path.is_file():
                digest.update(path.read_bytes())
        for path in (self.host_file, self.root_file, self.other_home / "secret.txt"):
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def markers_on_host(self) -> list[str]:
        found = []
        for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/etc", "/usr", str(self.home)):
            if os.path.lexists(os.path.join(d, self.marker)):
                found.append(d)
        return found

    def connections(self) -> int:
        return sum(listener.connections for listener in self.listeners)


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    tag = uuid.uuid4().hex[:12]
    canary = f"CANARY-{uuid.uuid4().hex}"
    base = tmp_path_factory.mktemp("escape")
    home = base / "enclave-home"
    home.mkdir(mode=0o700)
    (home / "enclave.db").write_bytes(b"SQLite format 3\x00" + canary.encode())
    (home / "vault.json").write_text(f'{{"wrapped": "{canary}"}}')
    host_file = base / "outside.txt"
    host_file.write_text("original")
    other_home = Path("/home") / f"enclave-canary-{tag}"
    other_home.mkdir(mode=0o700)
    (other_home / "secret.txt").write_text(canary)
    root_file = Path("/root") / f"enclave-canary-{tag}.txt"
    root_file.write_text(canary)
    unix_path = Path("/tmp") / f"enclave-sbx-{tag}.sock"
    abstract = f"enclave-sbx-{tag}"
    saved = {k: os.environ.get(k) for k in ("ENCLAVE_CANARY", "HTTPS_PROXY", "API_TOKEN")}
    os.environ.update(
        ENCLAVE_CANARY=canary, HTTPS_PROXY="http://example.org:3128/" + canary, API_TOKEN=canary
    )
    targets = Targets(canary, home, host_file, other_home, root_file, unix_path, abstract, tag)
    targets.marker = f"enclave-marker-{tag}"
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.bind(("127.0.0.1", 0))
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    v6.bind(("::1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(unix_path))
    unix_path.chmod(0o777)
    in_home = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    in_home.bind(str(home / "control.sock"))
    hidden = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hidden.bind("\0" + abstract)
    targets.listeners = [Listener(s) for s in (v4, v6, unix, in_home, hidden)]
    try:
        yield targets
    finally:
        for listener in targets.listeners:
            listener.close()
        unix_path.unlink(missing_ok=True)
        shutil.rmtree(other_home, ignore_errors=True)
        root_file.unlink(missing_ok=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
