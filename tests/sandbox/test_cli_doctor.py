"""`enclave sandbox exec|backends` and the doctor's sandbox lines, on the real backends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance.doctor import Status, check_sandbox
from tests.conftest import run_cli
from tests.sandbox.conftest import USABLE


@pytest.mark.parametrize("backend", ["bwrap", "firejail"])
def test_exec_prints_the_result_as_json(backend: str, tmp_path: Path) -> None:
    if {"bwrap": "bubblewrap"}.get(backend, backend) not in USABLE:
        pytest.skip(f"{backend} does not work on this machine")
    result = run_cli(
        "sandbox", "exec", "--home", tmp_path / "home", "--backend", backend,
        "--timeout", "2", "--memory", "256", "--",
        "/bin/sh", "-c", "echo out; echo err >&2; id -u; sleep 30",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected_uid = "65534" if os.geteuid() == 0 else str(os.getuid())
    assert data["stdout"].split() == ["out", expected_uid]
    assert data["stderr"] == "err\n"
    assert data["limit_hit"] == "wall_time"
    assert data["exit_code"] is None and data["signal"] == 9
    assert 1.5 < data["wall_seconds"] < 10
    assert data["stdout_truncated"] is False and data["stderr_truncated"] is False
    assert {"cpu_seconds", "peak_rss_mb", "policy_hash", "files"} <= set(data)
    assert data["backend"] == {"bwrap": "bubblewrap"}.get(backend, backend)


def test_exec_reports_the_command_exit_code(tmp_path: Path) -> None:
    result = run_cli("sandbox", "exec", "--home", tmp_path, "--", "/bin/sh", "-c", "exit 7")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["exit_code"] == 7


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--memory", "1"], "sandbox_request_invalid"),
        (["--timeout", "0"], "sandbox_request_invalid"),
        (["--backend", "docker"], "sandbox_unavailable"),
    ],
)
def test_exec_bad_options_are_one_line_errors(args: list[str], code: str, tmp_path: Path) -> None:
    result = run_cli("sandbox", "exec", "--home", tmp_path, *args, "--", "/bin/true")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {code}: ")


def test_backends_lists_each_backend_with_its_state() -> None:
    result = run_cli("sandbox", "backends")
    assert result.exit_code == 0
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"bubblewrap", "firejail"}
    for name in USABLE:
        assert lines[name].startswith("ok\t")


def test_doctor_reports_each_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checks = {c.name: c for c in check_sandbox()}
    for name in USABLE:
        assert checks[f"sandbox:{name}"].status == Status.OK
    monkeypatch.setenv("PATH", str(tmp_path))
    checks = {c.name: c for c in check_sandbox()}
    assert checks["sandbox:bubblewrap"].status == Status.WARN
    assert "bwrap is not installed" in checks["sandbox:bubblewrap"].detail
    assert checks["sandbox"].status == Status.FAIL
