"""Backend discovery against the real bubblewrap and firejail (installed by `make test`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import detect_backends
from sandbox.backends import probe_backend


def test_both_backends_start_an_isolated_process() -> None:
    found = {b.name: b for b in detect_backends()}
    assert set(found) == {"bubblewrap", "firejail"}
    for info in found.values():
        assert info.usable, info.detail
        assert info.path and Path(info.path).exists()
        assert info.version


def test_missing_tool_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    info = probe_backend("bubblewrap")
    assert not info.usable
    assert info.detail == "bwrap is not installed"


def test_failing_probe_explains_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A bwrap that answers --version but cannot create namespaces (as on a locked-down kernel).
    fake = tmp_path / "bwrap"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo "bubblewrap 0.0-test"; exit 0; }\n'
        'echo "bwrap: No permissions to create new namespace" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    info = probe_backend("bubblewrap")
    assert not info.usable
    assert info.version == "bubblewrap 0.0-test"
    assert "No permissions to create new namespace" in info.detail


def test_a_backend_that_cannot_enforce_the_full_policy_is_unusable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A bwrap that starts the simple probe but refuses the seccomp filter the policy needs.
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && { echo "bubblewrap 0.0-test"; exit 0; }\n'
        'for a in "$@"; do [ "$a" = --seccomp ] && { echo "bwrap: seccomp refused" >&2; exit 1; }; done\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    info = probe_backend("bubblewrap")
    assert not info.usable
    assert info.detail == "the full policy failed: bwrap: seccomp refused"


FIREJAIL_GROUPS = Path("/usr/share/doc/firejail/syscalls.txt")


@pytest.mark.skipif(not FIREJAIL_GROUPS.exists(), reason="firejail's syscall groups not installed")
def test_firejail_default_filter_covers_our_list() -> None:
    """firejail runs with its precompiled default filter (no per-run compile) under our spawn
    filter (see sandbox.spawn): together they deny every syscall bubblewrap's filter denies,
    and the spawn filter holds nothing firejail's list already has (nor anything firejail
    itself calls while it sets the sandbox up: mounts, clone)."""
    from sandbox.seccomp import BLOCKED_SYSCALLS, SPAWN_BLOCKED

    groups: dict[str, list[str]] = {}
    for line in FIREJAIL_GROUPS.read_text().splitlines():
        if line.startswith("@") and "=" in line:
            name, members = line.split("=", 1)
            groups[name] = members.split(",")

    def expand(item: str) -> set[str]:
        return set().union(*(expand(m) for m in groups[item])) if item in groups else {item}

    default = expand("@default-nodebuggers")
    assert set(BLOCKED_SYSCALLS) - default == set(SPAWN_BLOCKED)
    assert "mount" in default and "ptrace" in default and "bpf" in default
    assert not {"mount", "umount2", "clone", "pivot_root"} & set(SPAWN_BLOCKED)
