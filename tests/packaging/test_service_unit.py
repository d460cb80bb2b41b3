"""`enclave service install`: the systemd unit it writes is valid and keeps the sandbox working."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.service_unit import ServiceSpec, parse_unit, render_unit
from tests.conftest import run_cli

ENCLAVE = Path(sys.executable).parent / "enclave"


def verify(unit_text: str, tmp_path: Path) -> None:
    """systemd's own check of the unit: no error and no ignored (unknown or bad) line."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (the parsed-option tests still ran)")
    folder = tmp_path / "units"
    folder.mkdir()
    (folder / "enclave.service").write_text(unit_text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(folder / "enclave.service")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ignoring" not in done.stderr and "Unknown" not in done.stderr, done.stderr


def test_dry_run_prints_a_unit_systemd_accepts(tmp_path: Path, cli_env: None) -> None:
    keyfile = tmp_path / "unseal.key"
    result = run_cli(
        "service", "install", "--dry-run", "--backend", "bwrap", "--keyfile", keyfile,
        "--home", tmp_path / "data", "--host", "0.0.0.0", "--port", "8443",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    unit = parse_unit(result.stdout)
    service = unit["Service"]
    assert service["User"] == ["enclave"] and service["Group"] == ["enclave"]
    assert service["Restart"] == ["on-failure"]
    assert f"ENCLAVE_UNSEAL_KEYFILE={keyfile}" in service["Environment"]
    assert f"ENCLAVE_HOME={tmp_path / 'data'}" in service["Environment"]
    assert service["ExecStart"] == [
        f"{ENCLAVE} run --home {tmp_path / 'data'} --host 0.0.0.0 --port 8443"
    ]
    assert service["ReadWritePaths"] == [str(tmp_path / "data")]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    verify(result.stdout, tmp_path)


@pytest.mark.parametrize("backend", ["bwrap", "firejail"])
def test_no_option_that_breaks_the_sandbox(backend: str, tmp_path: Path) -> None:
    text = render_unit(ServiceSpec(executable=ENCLAVE, backend=backend))
    service = parse_unit(text)["Service"]
    # Both backends create namespaces, bwrap mounts and pivots, and runs get their own cgroup.
    for key in ("RestrictNamespaces", "PrivateUsers", "SystemCallFilter", "ProtectControlGroups"):
        assert key not in service, key
    assert service["Delegate"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    if backend == "firejail":
        # Setuid firejail cannot start under no-new-privileges, which systemd implies for any
        # seccomp-based option in a non-root service.
        assert service["NoNewPrivileges"] == ["no"]
        for key in ("PrivateDevices", "LockPersonality", "RestrictAddressFamilies", "ProtectClock"):
            assert key not in service, key
        assert "CapabilityBoundingSet" not in service
    else:
        assert service["NoNewPrivileges"] == ["yes"]
    assert "#Environment=ENCLAVE_UNSEAL_KEYFILE=" in text  # the unattended option, commented
    verify(text, tmp_path)


def test_output_writes_the_file_and_nothing_else(tmp_path: Path, cli_env: None) -> None:
    out = tmp_path / "enclave.service"
    result = run_cli("service", "install", "--output", out, "--backend", "firejail")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}"
    assert parse_unit(out.read_text())["Service"]["ExecStart"][0].startswith(f"{ENCLAVE} run ")
    assert oct(out.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--user", "root"], "dedicated system account"),
        (["--user", "Bad User"], "dedicated system account"),
        (["--backend", "docker"], "use bwrap or firejail"),
        (["--home", "/srv/x\nExecStartPre=/bin/sh"], "cannot carry"),
        (["--port", "0"], "not a TCP port"),
    ],
)
def test_bad_values_are_refused_with_a_reason(args: list[str], reason: str, cli_env: None) -> None:
    result = run_cli("service", "install", "--dry-run", "--backend", "bwrap", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid_request:")
    assert reason in result.stderr


def test_install_without_root_explains_the_alternatives(tmp_path: Path) -> None:
    # A real unprivileged run (nobody); as root the command would really install the unit.
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(ENCLAVE),
         "service", "install", "--backend", "bwrap"],
        capture_output=True, text=True, check=False, timeout=120, cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "needs root; use --dry-run or --output FILE" in done.stderr
