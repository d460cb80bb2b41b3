"""A run's network namespace made by the appliance (as root) rather than by the backend: a new,
empty namespace with its loopback up and, for a network allowlist, the allowed addresses on
that loopback and the relay's listening sockets in it (rtnetlink; no ``ip`` binary).

Namespaces are made and joined only on throwaway threads that then end, so no thread of the
appliance is ever left in one. For ``network=none`` the thread that starts the backend makes
the namespace itself (:func:`unshare_here`); for an allowlist it is made first, with the
relay's listeners, and that thread joins it (:func:`join_here`) through a descriptor kept in
the appliance (close-on-exec), so nothing of it reaches the sandbox. See :mod:`sandbox.spawn`.
Why not let the backend make it: firejail's ``--net=none`` spends a helper process and a fixed
10 ms sleep on bringing loopback up, and the relay needs its sockets in place before the
sandboxed code starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from sandbox.network import Endpoint

CLONE_NEWNET = 0x40000000
_RTM_NEWLINK, _RTM_NEWADDR, _NLMSG_ERROR = 16, 20, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
_IFF_UP = 0x1
_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS = 1, 2, 8
_IFA_F_NODAD = 0x02
_T = TypeVar("_T")


def supported() -> str | None:
    """Why the appliance cannot make run namespaces here, or None when it can."""
    if os.geteuid() != 0:
        return "needs the appliance to run as root (it makes the run's network namespace)"
    if not hasattr(socket, "AF_NETLINK") or not os.path.exists("/proc/self/ns/net"):
        return "network namespaces or rtnetlink are not available"
    return None


class RunNamespace:
    """An open network namespace for one run, and the listeners made in it."""

    def __init__(self, fd: int, listeners: list[socket.socket]) -> None:
        self.fd = fd
        self.listeners = listeners

    @classmethod
    async def create(cls, endpoints: list[Endpoint]) -> RunNamespace:
        """A new namespace: loopback up, each endpoint's address on it, a listening socket on
        each endpoint."""
        fd, listeners = await _in_fresh_thread(lambda: _make(endpoints))
        return cls(fd, listeners)

    def close(self) -> None:
        for sock in self.listeners:
            sock.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


async def _in_fresh_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` on a new thread that ends afterwards (it leaves our namespace)."""
    future: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def body() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=body, name="enclave-netns", daemon=True).start()
    return await asyncio.wrap_future(future)


def unshare_here() -> None:
    """Move the calling thread into a new, empty network namespace with its loopback up (the
    thread must be a throwaway one: see :mod:`sandbox.spawn`)."""
    _unshare()
    _loopback_up([])


def join_here(fd: int) -> None:
    """Move the calling thread into the namespace ``fd`` refers to."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns(CLONE_NEWNET): {os.strerror(code)}")


def _unshare() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWNET): {os.strerror(code)}")


def _make(endpoints: list[Endpoint]) -> tuple[int, list[socket.socket]]:
    _unshare()
    _loopback_up(endpoints)
    return _listen(endpoints)


def _loopback_up(endpoints: list[Endpoint]) -> None:
    index = socket.if_nametoindex("lo")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.bind((0, 0))
        link = struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, _IFF_UP, _IFF_UP)
        _request(nl, _RTM_NEWLINK, link)
        for ip in sorted({e.ip for e in endpoints}):
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            packed = socket.inet_pton(family, ip)
            body = struct.pack("BBBBI", family, len(packed) * 8, _IFA_F_NODAD, 0, index)
            body += _attr(_IFA_LOCAL, packed) + _attr(_IFA_ADDRESS, packed)
            body += _attr(_IFA_FLAGS, struct.pack("I", _IFA_F_NODAD))
            _request(nl, _RTM_NEWADDR, body, _NLM_F_CREATE | _NLM_F_EXCL, ok=(errno.EEXIST,))


def _listen(endpoints: list[Endpoint]) -> tuple[int, list[socket.socket]]:
    sockets: list[socket.socket] = []
    try:
        for end in endpoints:
            sock = socket.socket(end.family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((end.ip, end.port))
            sock.listen(64)
            sock.setblocking(False)
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return fd, sockets


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("HH", length, kind) + data + b"\0" * (-length % 4)


def _request(
    nl: socket.socket, kind: int, body: bytes, flags: int = 0, ok: tuple[int, ...] = ()
) -> None:
    header = struct.pack("IHHII", 16 + len(body), kind, _NLM_F_REQUEST | _NLM_F_ACK | flags, 1, 0)
    nl.send(header + body)
    reply = nl.recv(65536)
    length, rtype = struct.unpack_from("IH", reply)
    if rtype == _NLMSG_ERROR and length >= 20:
        (code,) = struct.unpack_from("i", reply, 16)
        if code < 0 and -code not in ok:
            raise OSError(-code, f"rtnetlink: {os.strerror(-code)}")
