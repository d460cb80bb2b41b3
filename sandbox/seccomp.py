"""The seccomp filter handed to bubblewrap (``--seccomp FD``), compiled with libseccomp.

Default allow, with the kernel interfaces untrusted code has no business calling denied with
EPERM: mounts, namespaces, tracing, keyrings, BPF, perf, modules, clocks and the like.

Firejail applies its own precompiled default filter; what that list lacks is
:func:`spawn_filter`, which the runner installs on the thread that starts firejail (see
:mod:`sandbox.spawn`), so firejail and everything under it inherit it.
"""

from __future__ import annotations

import ctypes
import errno
import os
from functools import lru_cache

import pyseccomp

BLOCKED_SYSCALLS: tuple[str, ...] = (
    "mount",
    "umount2",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "open_by_handle_at",
    "name_to_handle_at",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "fanotify_init",
    "vhangup",
    "personality",
    "io_uring_setup",
)
# clone() flags that would create namespaces (CLONE_NEWNS … CLONE_NEWCGROUP, CLONE_NEWTIME).
_NAMESPACE_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
)


# What firejail's precompiled default filter (``@default-nodebuggers``) lacks of
# BLOCKED_SYSCALLS, none of which firejail itself calls: installed around firejail instead of
# its ``--restrict-namespaces`` (which compiles a filter with two helper processes per run).
SPAWN_BLOCKED: tuple[str, ...] = ("unshare", "setns", "kcmp", "quotactl", "io_uring_setup")
# The namespace flags of clone() that firejail does not use itself (it clones with
# CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID, which need CAP_SYS_ADMIN — held by
# nothing in the sandbox — once it is running): user (the one kind an unprivileged process
# may create, and the way to every other kind), net, cgroup and time.
_SPAWN_CLONE_FLAGS = (0x10000000, 0x40000000, 0x02000000, 0x00000080)
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


@lru_cache(maxsize=1)
def compiled_filter() -> bytes:
    """The BPF program, built once per process."""
    return _build(BLOCKED_SYSCALLS, _NAMESPACE_FLAGS)


@lru_cache(maxsize=1)
def spawn_filter() -> bytes:
    """The BPF program the runner installs on the thread that starts firejail (built once)."""
    return _build(SPAWN_BLOCKED, _SPAWN_CLONE_FLAGS)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def load_on_this_thread(program: bytes) -> None:
    """Install ``program`` on the calling thread only (no TSYNC, no ``no_new_privs``: the
    caller is root); whatever it starts afterwards inherits it. The thread cannot shed it, so
    it must be a throwaway thread (see :mod:`sandbox.spawn`)."""
    prog = _SockFprog(len(program) // 8, program)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp: {os.strerror(code)}")


def _build(names: tuple[str, ...], clone_flags: tuple[int, ...]) -> bytes:
    filt = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in names:
        try:
            filt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            continue  # a syscall this architecture does not have
    for flag in clone_flags:
        filt.add_rule(
            pyseccomp.ERRNO(errno.EPERM),
            "clone",
            pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag),
        )
    # clone3 passes its flags in memory a filter cannot read: make libc fall back to clone().
    filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    read_fd = os.memfd_create("enclave-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(read_fd), "wb", closefd=True) as handle:
            filt.export_bpf(handle)
        os.lseek(read_fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_fd)


def filter_fd() -> int:
    """A fresh, rewound, inheritable file descriptor holding the filter (caller closes it)."""
    program = compiled_filter()
    fd = os.memfd_create("enclave-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
