"""The network allowlist on the real backends: a sandboxed run reaches exactly the listed
``host:port`` pairs on a real remote host (a network namespace behind a veth pair) and
nothing else — not another port of that host, not the appliance's port on any of this
machine's addresses, not DNS; raw sockets stay denied; the network attacks of the escape
suite still connect nowhere."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import sandbox.network as network_module
from sandbox import (
    BackendUnusable,
    PolicyInvalid,
    RunResult,
    Sandbox,
    SandboxPolicy,
    available_backends,
    default_policy,
)
from tests.conftest import run_cli
from tests.sandbox.conftest import Listener, Targets
from tests.sandbox.escape_attacks import ATTACKS
from tests.sandbox.remote_host import RemoteHost, make_remote_host, usable
from tests.sandbox.test_escape import PYTHON, _program

ALLOWLIST_BACKENDS = [b.name for b in available_backends() if b.allowlist]
NETWORK_ATTACKS = [
    "connect_appliance_ipv4",
    "connect_appliance_ipv6",
    "connect_other_loopback",
    "dns_lookup",
    "raw_sockets",
    "unix_sockets_run",
    "unix_sockets_x11_dbus",
]

PROBE = r"""
import json, os, socket
out = {"fds": []}
for fd in os.listdir("/proc/self/fd"):
    try:
        out["fds"].append(os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass
def tcp(host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(b"hi")
        return s.recv(100).decode() or "closed"
    except OSError as exc:
        return "error: " + type(exc).__name__
    finally:
        s.close()
for key, (host, port) in CONNECT.items():
    out[key] = tcp(host, port, socket.AF_INET6 if ":" in host else socket.AF_INET)
for name in NAMES:
    try:
        out["dns " + name] = sorted({i[4][0] for i in socket.getaddrinfo(name, 80)})
    except OSError as exc:
        out["dns " + name] = "error: " + type(exc).__name__
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    udp.sendto(b"\0" * 12, ("1.1.1.1", 53))
    out["udp"] = "sent"
except OSError as exc:
    out["udp"] = "error: " + type(exc).__name__
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out["raw"] = "opened"
except OSError as exc:
    out["raw"] = "error: " + type(exc).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def remote() -> Iterator[RemoteHost]:
    if os.geteuid() != 0 or not usable():
        pytest.skip("the remote test host needs root and iproute2")
    host = make_remote_host()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def appliance_port() -> Iterator[Listener]:
    """Stands in for the appliance: listening on every address of this machine."""
    sock = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    listener = Listener(sock)
    yield listener
    listener.close()


def _eth_addresses() -> list[str]:
    found = set()
    for info in socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM):
        ip = str(info[4][0])
        if not ip.startswith("127.") and ip != "::1":
            found.add(ip)
    return sorted(found)


def _policy(tmp_path: Path, *allowed: str) -> SandboxPolicy:
    base = default_policy(tmp_path / "home").with_limits(wall_seconds=20)
    return replace(base, network="allowlist", network_allowlist=allowed)


async def _probe(
    backend: str, policy: SandboxPolicy, tmp_path: Path, connect: dict[str, Any], names: list[str]
) -> tuple[dict[str, Any], RunResult]:
    program = f"CONNECT = {connect!r}\nNAMES = {names!r}\n{PROBE}"
    sandbox = Sandbox(policy, backend, workspace_root=tmp_path / "ws")
    result = await sandbox.run(PYTHON, stdin=program.encode())
    assert result.exit_code == 0, result.to_dict()
    return json.loads(result.stdout), result


@pytest.mark.parametrize("backend", ALLOWLIST_BACKENDS)
async def test_only_the_allowed_destination_is_reachable(
    backend: str, remote: RemoteHost, appliance_port: Listener, tmp_path: Path
) -> None:
    allowed, other = remote.ports
    app = int(appliance_port.sock.getsockname()[1])
    before = dict(remote.counts)
    connect: dict[str, Any] = {
        "allowed": (remote.ip, allowed),
        "other port": (remote.ip, other),
        "allowed port on loopback": ("127.0.0.1", allowed),
        "appliance 127.0.0.1": ("127.0.0.1", app),
        "appliance ::1": ("::1", app),
        "appliance via veth": (remote.host_ip, app),
    }
    for i, ip in enumerate(_eth_addresses()):
        connect[f"appliance via {i}"] = (ip, app)
    policy = _policy(tmp_path, f"{remote.ip}:{allowed}")
    out, result = await _probe(backend, policy, tmp_path, connect, ["example.org", "localhost"])
    assert out["allowed"] == f"echo:{allowed}:hi", out
    for key in connect:
        if key != "allowed":
            assert out[key].startswith("error: "), (key, out)
    assert out["dns example.org"].startswith("error: "), out
    assert out["udp"].startswith("error: "), out
    assert out["raw"].startswith("error: "), out
    # The namespace is the appliance's handle only: no descriptor on it reaches the code.
    assert not any(target.startswith("net:") for target in out["fds"]), out["fds"]
    assert appliance_port.connections == 0
    assert remote.counts[allowed] == before.get(allowed, 0) + 1
    assert remote.counts[other] == before.get(other, 0)
    assert "1 connection" in result.enforcement["network"]
    assert result.policy_hash == policy.digest()


@pytest.mark.parametrize("backend", ALLOWLIST_BACKENDS)
async def test_an_allowed_hostname_resolves_inside_and_nothing_else_does(
    backend: str, remote: RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No DNS server exists offline: the appliance's resolver answers this one name.
    async def lookup(host: str, port: int) -> list[str]:
        if host == "files.example.test":
            return [remote.ip]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(network_module, "lookup", lookup)
    allowed = remote.ports[0]
    policy = _policy(tmp_path, f"files.example.test:{allowed}")
    out, _ = await _probe(
        backend,
        policy,
        tmp_path,
        {"by name": ("files.example.test", allowed)},
        ["files.example.test", "other.example.test", "example.org"],
    )
    assert out["by name"] == f"echo:{allowed}:hi", out
    assert out["dns files.example.test"] == [remote.ip], out
    assert out["dns other.example.test"].startswith("error: "), out
    assert out["dns example.org"].startswith("error: "), out


@pytest.mark.parametrize("backend", ALLOWLIST_BACKENDS)
async def test_destinations_on_this_machine_are_refused_at_launch(
    backend: str, remote: RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def lookup(host: str, port: int) -> list[str]:
        return {"sneaky.example.test": ["127.0.0.53"], "mine.example.test": [remote.host_ip]}[host]

    monkeypatch.setattr(network_module, "lookup", lookup)
    for entry in (f"{remote.host_ip}:8080", "sneaky.example.test:80", "mine.example.test:80"):
        sandbox = Sandbox(_policy(tmp_path, entry), backend, workspace_root=tmp_path / "ws")
        with pytest.raises(PolicyInvalid) as info:
            await sandbox.run(["/bin/true"])
        assert "never reaches it" in info.value.message


@pytest.mark.parametrize("backend", ALLOWLIST_BACKENDS)
async def test_network_attacks_stay_contained_with_an_allowlist(
    backend: str, remote: RemoteHost, targets: Targets, tmp_path: Path
) -> None:
    """The escape suite's network attacks, under a policy that does allow one destination:
    still no connection to any listener of this machine, no LEAK."""
    policy = default_policy(targets.home).with_limits(wall_seconds=20)
    policy = replace(
        policy, network="allowlist", network_allowlist=(f"{remote.ip}:{remote.ports[0]}",)
    )
    sandbox = Sandbox(policy, backend, workspace_root=targets.home / "workspaces")
    before = targets.connections()
    for name in NETWORK_ATTACKS:
        attack = next(a for a in ATTACKS if a.name == name)
        result = await sandbox.run(PYTHON, stdin=_program(attack, targets))
        shown = f"{backend} {name}: {result.to_dict()}"
        assert "DONE" in result.stdout and result.exit_code == 0, shown
        assert "LEAK" not in result.stdout, shown
        assert targets.canary not in result.stdout + result.stderr, shown
    assert targets.connections() == before == 0


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("127.0.0.1:8080", "loopback"),
        ("[::1]:8080", "loopback"),
        ("[::ffff:127.0.0.1]:80", "loopback"),
        ("localhost:80", "loopback"),
        ("0.0.0.0:80", "unspecified"),
        ("169.254.169.254:80", "link-local"),
        ("224.0.0.1:80", "multicast"),
        ("example.org", "host:port"),
        ("example.org:0", "host:port"),
        ("example.org:70000", "host:port"),
        ("bad_name!:80", "neither an IP"),
        ("2001:db8::1:443", "[address]:port"),
    ],
)
def test_bad_allowlist_entries_are_refused(entry: str, fragment: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        SandboxPolicy(network="allowlist", network_allowlist=(entry,))
    assert fragment in info.value.message
    assert info.value.code == "sandbox_policy_invalid"


def test_the_mode_and_the_entries_go_together() -> None:
    with pytest.raises(PolicyInvalid, match="needs network='allowlist'"):
        SandboxPolicy(network_allowlist=("192.0.2.10:443",))
    with pytest.raises(PolicyInvalid, match="at least one"):
        SandboxPolicy(network="allowlist")
    with pytest.raises(PolicyInvalid, match="tuple"):
        SandboxPolicy(network="allowlist", network_allowlist="192.0.2.10:443")  # type: ignore[arg-type]


def test_the_digest_covers_the_allowlist_in_canonical_form() -> None:
    none = SandboxPolicy()
    a = SandboxPolicy(
        network="allowlist", network_allowlist=("Files.Example.TEST:443", "[2001:DB8::1]:22")
    )
    b = SandboxPolicy(
        network="allowlist", network_allowlist=("[2001:db8::1]:22", "files.example.test:443")
    )
    c = SandboxPolicy(
        network="allowlist", network_allowlist=("files.example.test:444", "[2001:db8::1]:22")
    )
    assert a.network_allowlist == ("[2001:db8::1]:22", "files.example.test:443")
    assert a.digest() == b.digest() != c.digest()
    assert a.digest() != none.digest()
    assert "network_allowlist" not in none.canonical()  # network=none digests are unchanged
    assert list(a.canonical()["network_allowlist"]) == [
        "[2001:db8::1]:22",
        "files.example.test:443",
    ]


def test_allowlist_needs_a_backend_that_can_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox.runner as runner_module

    infos = [replace(b, allowlist=False, allowlist_detail="network allowlist unavailable: test")
             for b in available_backends()]  # fmt: skip
    if not any(b.usable for b in infos):
        pytest.skip("no backend works here")
    monkeypatch.setattr(runner_module, "_backend_cache", infos)
    policy = SandboxPolicy(network="allowlist", network_allowlist=("192.0.2.10:443",))
    with pytest.raises(BackendUnusable, match="network allowlist unavailable"):
        Sandbox(policy)
    Sandbox(SandboxPolicy())  # network=none still runs


@pytest.mark.skipif(os.geteuid() != 0, reason="as a service user the allowlist is refused")
def test_every_working_backend_offers_the_allowlist_as_root() -> None:
    usable_backends = [b for b in available_backends() if b.usable]
    assert usable_backends, "no backend works here"
    for info in usable_backends:
        assert info.allowlist, info


def test_cli_exec_refuses_a_loopback_allowlist_entry(tmp_path: Path) -> None:
    result = run_cli(
        "sandbox", "exec", "--home", tmp_path, "--allow", "127.0.0.1:8080", "--", "/bin/true"
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: sandbox_request_invalid: ")
    assert "loopback" in result.output


@pytest.mark.parametrize("backend", ALLOWLIST_BACKENDS)
def test_cli_exec_allows_the_listed_destination(
    backend: str, remote: RemoteHost, tmp_path: Path
) -> None:
    allowed, other = remote.ports
    code = (
        "import socket\n"
        f"s = socket.create_connection(({remote.ip!r}, {allowed}), timeout=3)\n"
        "s.sendall(b'cli'); print(s.recv(100).decode())\n"
        "try:\n"
        f"    socket.create_connection(({remote.ip!r}, {other}), timeout=3)\n"
        "    print('LEAK')\n"
        "except OSError:\n"
        "    print('refused')\n"
    )
    result = run_cli(
        "sandbox", "exec", "--home", tmp_path, "--backend", backend,
        "--allow", f"{remote.ip}:{allowed}", "--", sys.executable, "-I", "-c", code,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stdout"].split() == [f"echo:{allowed}:cli", "refused"], data
    assert data["enforcement"]["network"].startswith("allowlist relay")
