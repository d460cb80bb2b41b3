"""The seccomp filter handed to bubblewrap (``--seccomp FD``), compiled with libseccomp.

Default allow, with the kernel interfaces untrusted code has no business calling denied with
EPERM: mounts, namespaces, tracing, keyrings, BPF, perf, modules, clocks and the like. Firejail
gets the same names on top of its own default list (``--seccomp=...``).
"""

from __future__ import annotations

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


@lru_cache(maxsize=1)
def compiled_filter() -> bytes:
    """The BPF program, built once per process."""
    filt = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in BLOCKED_SYSCALLS:
        try:
            filt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            continue  # a syscall this architecture does not have
    for flag in _NAMESPACE_FLAGS:
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
