"""The sandbox run by an unprivileged service user (no root, no cgroups): bubblewrap through a
user namespace, RLIMIT_NPROC instead of a pids cgroup, firejail refused by its users list.

The test copies the ``sandbox`` package (and ``pyseccomp``) to a world-readable folder and runs
it as uid 65534 with Debian's Python, since this checkout and its venv sit under /root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox

SYSTEM_PYTHON = Path("/usr/bin/python3")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON.exists() or shutil.which("setpriv") is None,
    reason="needs root (to become another user) and Debian's python3",
)

SCRIPT = """
import asyncio, json, os, sys
from sandbox import Limits, Sandbox, SandboxPolicy, detect_backends
home, port = sys.argv[1], int(sys.argv[2])
probe = "import os, socket\\n" \\
    "print(os.getuid(), sorted(os.listdir('/')))\\n" \\
    "try:\\n    print(open(%r).read())\\nexcept OSError as e:\\n    print('hidden', e.errno)\\n" \\
    "s = socket.socket()\\ntry:\\n    s.connect(('127.0.0.1', %d)); print('LEAK')\\n" \\
    "except OSError as e:\\n    print('refused', e.errno)\\n" % (home + '/secret.txt', port)
async def main():
    out = {"backends": {b.name: [b.usable, b.detail] for b in detect_backends()}}
    policy = SandboxPolicy(hidden_paths=(home,), limits=Limits(wall_seconds=20, cpu_seconds=1, max_processes=32))
    box = Sandbox(policy, "bwrap")
    run = await box.run(["/usr/bin/python3", "-c", probe])
    bomb = await box.run(["/bin/bash", "-c", "b(){ b|b& }; b; sleep 2"])
    spin = await box.run(["/usr/bin/python3", "-c", "while True: pass"])
    out["run"] = run.to_dict()
    out["bomb"] = bomb.limit_hit
    out["spin"] = spin.limit_hit
    print(json.dumps(out))
asyncio.run(main())
"""


@pytest.fixture
def unprivileged_copy() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="enclave-unpriv-"))
    root.chmod(0o755)
    shutil.copytree(Path(sandbox.__file__).parent, root / "sandbox")
    import pyseccomp

    shutil.copy(pyseccomp.__file__, root / "pyseccomp.py")
    (root / "run.py").write_text(SCRIPT)
    home = root / "service-home"
    home.mkdir()
    (home / "secret.txt").write_text("CANARY-unprivileged")
    subprocess.run(["chown", "-R", "65534:65534", str(home)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_bubblewrap_as_a_service_user(unprivileged_copy: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    home = unprivileged_copy / "service-home"
    try:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SYSTEM_PYTHON),
             str(unprivileged_copy / "run.py"), str(home), str(port)],
            cwd=unprivileged_copy, capture_output=True, text=True, timeout=120, check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        )  # fmt: skip
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["backends"]["bubblewrap"][0] is True
    assert out["backends"]["firejail"][0] is False  # its users list refuses this uid
    run = out["run"]
    lines = run["stdout"].splitlines()
    assert lines[0].startswith("65534 ")
    assert "root" not in lines[0] and "home" not in lines[0]
    assert lines[1] == "hidden 2"
    assert lines[2].startswith("refused")
    assert "CANARY" not in run["stdout"] + run["stderr"]
    assert run["enforcement"]["processes"] == "RLIMIT_NPROC"
    assert out["bomb"] == "processes"
    assert out["spin"] == "cpu_time"
