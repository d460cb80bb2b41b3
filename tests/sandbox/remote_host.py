"""A real "remote" machine for the network allowlist tests: a network namespace joined to this
one by a veth pair, running a TCP echo server that counts every connection per port.

Its address is not one of this machine's (it lives in the other namespace), so the relay may
reach it; the host end of the veth pair is one of this machine's addresses, so it may not.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field

SERVER = r"""
import socket, sys, threading
def serve(sock, port):
    while True:
        conn, _ = sock.accept()
        print("conn", port, flush=True)
        def echo(conn=conn):
            with conn:
                data = conn.recv(65536)
                conn.sendall(b"echo:%d:" % port + data)
        threading.Thread(target=echo, daemon=True).start()
for port in map(int, sys.argv[1:]):
    sock = socket.create_server(("0.0.0.0", port))
    threading.Thread(target=serve, args=(sock, port), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass
class RemoteHost:
    netns: str
    link: str
    ip: str
    host_ip: str
    ports: tuple[int, ...]
    process: subprocess.Popen[str] | None = None
    counts: Counter[int] = field(default_factory=Counter)

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-I", "-c", SERVER,
             *map(str, self.ports)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            _, port = line.split()
            self.counts[int(port)] += 1

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        subprocess.run(["ip", "link", "del", self.link], check=False, capture_output=True)


def usable() -> bool:
    return shutil.which("ip") is not None


def make_remote_host() -> RemoteHost:
    tag = uuid.uuid4().hex[:8]
    net = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
    host = RemoteHost(
        netns=f"enclave-remote-{tag}",
        link=f"enc{tag}h",
        ip=f"{net}.2",
        host_ip=f"{net}.1",
        ports=(random.randint(20000, 29999), random.randint(30000, 39999)),
    )
    peer = f"enc{tag}n"
    steps = [
        ["ip", "netns", "add", host.netns],
        ["ip", "link", "add", host.link, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", host.netns],
        ["ip", "addr", "add", f"{host.host_ip}/30", "dev", host.link],
        ["ip", "link", "set", host.link, "up"],
        ["ip", "-n", host.netns, "addr", "add", f"{host.ip}/30", "dev", peer],
        ["ip", "-n", host.netns, "link", "set", peer, "up"],
        ["ip", "-n", host.netns, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, text=True)
        host.start()
    except BaseException:
        host.stop()
        raise
    return host
