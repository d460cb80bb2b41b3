"""The network allowlist at run time: a TCP relay in the appliance, listening inside the run's
own (otherwise empty) network namespace on exactly the allowed ``address:port`` pairs.

The sandbox keeps a private network namespace (as with ``network=none``): no route, no
interface but its loopback. The appliance makes that namespace itself before the sandbox starts
(:mod:`sandbox.netns`), adds each allowed address to its loopback and opens a listening socket
on each allowed pair; the backend is started from a thread that joined it (:mod:`sandbox.spawn`).
A connection the code makes to ``203.0.113.5:443`` therefore lands on the appliance's socket,
and the appliance — from its own namespace — connects to that same, pre-resolved destination and copies bytes both ways.
Nothing else has a route: other hosts and ports, the host's loopback (the appliance's own
port), DNS servers. The code cannot choose where a relayed connection goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import tempfile
from pathlib import Path

from sandbox.errors import SandboxStartFailed
from sandbox.netns import RunNamespace
from sandbox.network import Endpoint, hosts_file, resolve
from sandbox.policy import SandboxPolicy

CONNECT_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 32
_CHUNK = 65536


class NetworkRelay:
    """One run's network: :meth:`prepare` before the sandbox starts (the namespace, and for an
    allowlist the listeners and /etc/hosts), :meth:`close` after it ended."""

    def __init__(self, netns: RunNamespace, endpoints: list[Endpoint], hosts: Path | None) -> None:
        self.netns = netns
        self.endpoints = endpoints
        self.hosts_path = hosts
        self.connections = 0
        self.refused = 0
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def prepare(cls, policy: SandboxPolicy) -> NetworkRelay:
        """The run's namespace; for ``network=allowlist`` the allowlist resolved (refusing
        loopback and this machine's addresses), listening, and the run's /etc/hosts."""
        endpoints: list[Endpoint] = []
        hosts: Path | None = None
        if policy.network == "allowlist":
            endpoints = await resolve(policy.destinations())
            # Read by the backend as root on the host side; the file is the run's /etc/hosts.
            hosts = Path(tempfile.mkdtemp(prefix="enclave-net-")) / "hosts"
            hosts.write_text(hosts_file(endpoints))
            hosts.chmod(0o644)
        try:
            netns = await RunNamespace.create(endpoints)
        except OSError as exc:
            _remove(hosts)
            raise SandboxStartFailed(f"The run's network could not be set up: {exc}") from exc
        relay = cls(netns, endpoints, hosts)
        for sock, end in zip(netns.listeners, endpoints, strict=True):
            server = await asyncio.start_server(
                functools.partial(relay._accept, end=end), sock=sock
            )
            relay._servers.append(server)
        return relay

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, end: Endpoint
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= MAX_CONNECTIONS:
            self.refused += 1
            writer.transport.abort()
            return
        self._tasks.add(task)
        try:
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(end.ip, end.port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                writer.transport.abort()
                return
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                up_writer.transport.abort()
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening, cut every relayed connection, drop the namespace and the files."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        self.netns.close()
        _remove(self.hosts_path)

    def summary(self) -> str:
        """For the run's enforcement record."""
        if not self.endpoints:
            return "none (private namespace)"
        listed = ", ".join(
            f"{e.ip}:{e.port}" if e.family == socket.AF_INET else f"[{e.ip}]:{e.port}"
            for e in self.endpoints
        )
        return f"allowlist relay ({listed}); {self.connections} connection(s)"


def _remove(hosts: Path | None) -> None:
    if hosts is not None:
        with contextlib.suppress(OSError):
            hosts.unlink()
            hosts.parent.rmdir()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.transport.abort()
