"""Network allowlist entries: ``host:port`` destinations a sandboxed run may connect to (TCP).

An entry is an IP literal (``192.0.2.10:443``, ``[2001:db8::1]:443``) or a hostname
(``pypi.internal:443``). Hostnames are resolved once, by the appliance, when a run starts: the
sandbox sees the resolved addresses through its own ``/etc/hosts`` and the relay connects to
exactly those addresses (no resolution inside the sandbox, no DNS rebinding during a run).

Never allowed, whatever the policy says: loopback (the appliance's own port, local databases),
the unspecified address, multicast and broadcast, link-local (cloud metadata services), and any
address of this machine itself (checked at launch by binding to it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

from sandbox.errors import PolicyInvalid, SandboxStartFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_ENTRIES = 64
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


@dataclass(frozen=True, order=True)
class Destination:
    """One allowlist entry: ``host`` is a normalised IP literal or a lower-case hostname."""

    host: str
    port: int

    @property
    def address(self) -> IPAddress | None:
        """The IP literal, or None for a hostname."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def __str__(self) -> str:
        address = self.address
        if address is not None and address.version == 6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, order=True)
class Endpoint:
    """A resolved destination: what the relay listens on inside and connects to outside."""

    ip: str
    port: int
    name: str | None = None

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.ip else socket.AF_INET


def parse_destination(text: str) -> Destination:
    """``host:port`` or ``[v6]:port`` → :class:`Destination` (refused: loopback, bad ports…)."""
    if not isinstance(text, str):
        raise PolicyInvalid(f"Network allowlist entries are 'host:port' strings, not {text!r}.")
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
    else:
        host, sep, port_text = raw.rpartition(":")
        if ":" in host:
            sep = ""  # an IPv6 address without brackets: which colon ends it?
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PolicyInvalid(
            f"Network allowlist entry {text!r} is not 'host:port' (port 1-65535; IPv6 as "
            "'[address]:port').",
            field="network_allowlist",
        )
    port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return Destination(_hostname(text, host), port)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    reason = forbidden_reason(address)
    if reason:
        raise PolicyInvalid(
            f"Network allowlist entry {text!r} is {reason}, which the sandbox never reaches.",
            field="network_allowlist",
        )
    return Destination(str(address), port)


def _hostname(text: str, host: str) -> str:
    name = host.lower().rstrip(".")
    if not _HOSTNAME.fullmatch(name) or name.isdigit():
        raise PolicyInvalid(
            f"Network allowlist entry {text!r}: {host!r} is neither an IP address nor a hostname.",
            field="network_allowlist",
        )
    if name in _LOCAL_NAMES:
        raise PolicyInvalid(
            f"Network allowlist entry {text!r} names this machine's loopback, which the "
            "sandbox never reaches.",
            field="network_allowlist",
        )
    return name


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may never be a destination, or None."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        return "a multicast or broadcast address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    return None


def is_this_machine(ip: str) -> bool:
    """True when ``ip`` is an address of this host (binding to it succeeds): a relay to it
    would reach the appliance's own port or another local service."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


async def lookup(host: str, port: int) -> list[str]:
    """The addresses ``host`` has now, by the appliance's resolver (/etc/hosts, DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]).split("%")[0] for info in infos]


async def resolve(destinations: tuple[Destination, ...]) -> list[Endpoint]:
    """Every destination as the endpoints the relay serves: IP literals as they are,
    hostnames resolved now (each address of the name). Refuses (:class:`PolicyInvalid`) an
    address that is loopback, link-local… or this machine's own; a name that does not resolve
    stops the launch (:class:`SandboxStartFailed`)."""
    found: dict[tuple[str, int], Endpoint] = {}
    for dest in destinations:
        address = dest.address
        candidates: list[tuple[str, str | None]] = []
        if address is not None:
            candidates.append((str(address), None))
        else:
            try:
                candidates += [(ip, dest.host) for ip in await lookup(dest.host, dest.port)]
            except (OSError, UnicodeError) as exc:
                raise SandboxStartFailed(
                    f"The allowed host {dest.host} could not be resolved: {exc}"
                ) from exc
        for ip, name in candidates:
            parsed = ipaddress.ip_address(ip)
            reason = forbidden_reason(parsed)
            if reason is None and await asyncio.to_thread(is_this_machine, ip):
                reason = "an address of this machine"
            if reason:
                raise PolicyInvalid(
                    f"The allowed destination {dest} resolves to {ip}, {reason}; the sandbox "
                    "never reaches it.",
                    field="network_allowlist",
                )
            found.setdefault((ip, dest.port), Endpoint(ip, dest.port, name))
    return sorted(found.values())


def hosts_file(endpoints: list[Endpoint]) -> str:
    """The ``/etc/hosts`` a run sees: loopback names and the allowed hostnames, nothing else."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    seen: set[tuple[str, str]] = set()
    for end in endpoints:
        if end.name and (end.ip, end.name) not in seen:
            seen.add((end.ip, end.name))
            lines.append(f"{end.ip}\t{end.name}")
    return "\n".join(lines) + "\n"
