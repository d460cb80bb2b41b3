"""Find the sandbox tools (bubblewrap, firejail) and prove each can start an isolated process."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each probe starts /bin/true with no network and a read-only root; exit 0 means the tool works
# on this kernel (user namespaces, seccomp) and not merely that the binary exists.
_PROBES: dict[str, tuple[list[str], list[str]]] = {
    "bubblewrap": (
        ["bwrap", "--version"],
        ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--", "/bin/true"],
    ),
    "firejail": (
        ["firejail", "--version"],
        ["firejail", "--quiet", "--noprofile", "--net=none", "--", "/bin/true"],
    ),
}


@dataclass(frozen=True)
class BackendInfo:
    """What one isolation backend can do on this machine."""

    name: str
    path: str | None
    version: str | None
    usable: bool
    detail: str
    # Whether a policy with network="allowlist" can run (the relay, see sandbox.relay).
    allowlist: bool = False
    allowlist_detail: str = "the backend does not work"


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def probe_backend(name: str, timeout: float = 10.0) -> BackendInfo:
    """Locate ``name`` (``bubblewrap`` or ``firejail``) and run its isolation probe."""
    version_argv, probe_argv = _PROBES[name]
    path = shutil.which(version_argv[0])
    if path is None:
        return BackendInfo(name, None, None, False, f"{version_argv[0]} is not installed")
    try:
        ver = _run(version_argv, timeout)
        version = (
            (ver.stdout or ver.stderr).strip().splitlines()[0]
            if (ver.stdout or ver.stderr)
            else None
        )
        probe = _run(probe_argv, timeout)
    except subprocess.TimeoutExpired:
        return BackendInfo(name, path, None, False, f"{name} did not answer within {timeout:.0f} s")
    except OSError as exc:
        return BackendInfo(name, path, None, False, f"{name} cannot be started: {exc.strerror}")
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        why = reason[-1] if reason else f"exit status {probe.returncode}"
        return BackendInfo(name, path, version, False, f"isolation probe failed: {why}")
    missing = _missing_helpers(name)
    if missing:
        return BackendInfo(name, path, version, False, missing)
    failure = _policy_probe(name, timeout)
    if failure:
        return BackendInfo(name, path, version, False, f"the full policy failed: {failure}")
    allowlist_problem = _allowlist_problem(name, timeout)
    return BackendInfo(
        name,
        path,
        version,
        True,
        "isolated process started under the full policy (no network, hidden home, "
        "unprivileged, seccomp, limits)",
        allowlist_problem is None,
        allowlist_problem or "network allowlist available (TCP relay into the run's namespace)",
    )


def _allowlist_problem(name: str, timeout: float) -> str | None:
    """Why ``network=allowlist`` cannot run with this backend here, or None."""
    from sandbox.netns import supported

    problem = supported()
    if problem or name != "firejail":
        return f"network allowlist unavailable: {problem}" if problem else None
    # firejail shows the run our /etc/hosts only with this option.
    try:
        helptext = _run(["firejail", "--help"], timeout).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"network allowlist unavailable: firejail --help failed: {exc}"
    if "--hosts-file" not in helptext:
        return "network allowlist unavailable: this firejail has no --hosts-file"
    return None


def _policy_probe(name: str, timeout: float) -> str | None:
    """Run /bin/true exactly as the runner would (every mount, limit, the uid drop and the
    seccomp filter): None when it works, else the backend's last word."""
    # Imported here: the builders need pyseccomp, whose absence the probe above reports.
    from sandbox.bwrap import bwrap_argv
    from sandbox.confine import inner_command, running_as_root, sandbox_env
    from sandbox.firejail import firejail_argv, open_home_probe
    from sandbox.netns import supported
    from sandbox.policy import SandboxPolicy, python_paths
    from sandbox.seccomp import filter_fd, spawn_filter
    from sandbox.spawn import SpawnThread

    # As a run's: the Python installation whitelisted (firejail may have to open /root for it).
    policy = SandboxPolicy(readonly_paths=python_paths())
    fds: list[int] = []
    with tempfile.TemporaryDirectory(prefix="enclave-probe-") as tmp:
        workspace = Path(tmp)
        if running_as_root():
            os.chown(workspace, policy.uid, policy.gid)
        check = open_home_probe(policy, workspace) if name == "firejail" else None
        if check is not None:
            try:
                seen = _run(check, timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return str(exc)
            if seen.stdout.strip() != "tmpfs":
                return f"/root inside is not firejail's tmpfs ({seen.stdout.strip() or seen.stderr.strip()})"
        inner = inner_command(policy, ["/bin/true"], with_nproc=False)
        thread: SpawnThread | None = None
        seccomp: bytes | None = None
        if name == "bubblewrap":
            fds.append(filter_fd())
            argv = bwrap_argv(policy, workspace, inner, fds[0])
        elif supported() is None:
            # As the runner starts firejail: from a thread in a network namespace it made,
            # under the spawn filter (see sandbox.spawn).
            thread, seccomp = SpawnThread(None), spawn_filter()
            argv = firejail_argv(policy, workspace, inner, netns_ready=True, filtered=True)
        else:
            argv = firejail_argv(policy, workspace, inner)

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                argv,
                env=sandbox_env(policy, str(workspace)),
                cwd=workspace,
                pass_fds=tuple(fds),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        try:
            proc = start() if thread is None else thread.start_blocking(start, None, seccomp).value
        except OSError as exc:
            return str(exc)
        finally:
            for fd in fds:
                os.close(fd)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            return str(exc)
        finally:
            if thread is not None:
                thread.discard()
        done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def _missing_helpers(name: str) -> str | None:
    """Why the policy could not be enforced with this backend, or None when it can."""
    needed = ["prlimit"] + (["setpriv"] if os.geteuid() == 0 else [])
    for tool in needed:
        if shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin") is None:
            return f"{tool} (util-linux) is missing: resource limits cannot be enforced"
    # bubblewrap loads our filter; as root firejail starts under our spawn filter.
    if name == "bubblewrap" or os.geteuid() == 0:
        try:
            from sandbox.seccomp import compiled_filter, spawn_filter

            compiled_filter()
            spawn_filter()
        except (ImportError, OSError, RuntimeError) as exc:
            return f"the seccomp filter cannot be built (libseccomp): {exc}"
    return None


def detect_backends(timeout: float = 10.0) -> list[BackendInfo]:
    """Every known backend, usable or not, in order of preference."""
    return [probe_backend(name, timeout) for name in _PROBES]
