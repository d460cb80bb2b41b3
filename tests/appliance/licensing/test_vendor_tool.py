"""The vendor tool end to end: keygen, license, voucher, list — and files it signs are accepted
by an appliance trusting its key. The appliance never imports it."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from appliance.licensing.document import parse_license, parse_voucher, verify_signed
from appliance.licensing.keys import load_vendor_keys
from tests.appliance.licensing.license_world import ROOT, VENDOR_DIR, vendor_tool

PUBLIC = "vendor-ed25519.pem"


def test_vendor_cli_issues_files_the_appliance_accepts(tmp_path: Path) -> None:
    vendor_tool()
    cli = importlib.import_module("enclave_vendor.cli")
    runner = CliRunner()
    keys = tmp_path / "keys"
    made = runner.invoke(cli.app, ["keygen", "--keys", str(keys)])
    assert made.exit_code == 0, made.output
    assert (keys / "vendor-ed25519.key").stat().st_mode & 0o777 == 0o600
    lic_path, voucher_path = tmp_path / "l.json", tmp_path / "v.json"
    issued = runner.invoke(
        cli.app,
        [
            "license",
            "--keys",
            str(keys),
            "--out",
            str(lic_path),
            "--customer",
            "ACME",
            "--seats",
            "7",
            "--feature",
            "agents",
            "--credits-once",
            "12.5",
        ],
    )
    assert issued.exit_code == 0, issued.output
    trusted = load_vendor_keys(keys / "vendor-ed25519.pem")
    lic = parse_license(verify_signed(lic_path.read_bytes(), trusted))
    assert (lic.customer, lic.seats, lic.features, lic.once_micro) == (
        "ACME",
        7,
        ("agents",),
        12_500_000,
    )
    topped = runner.invoke(
        cli.app,
        [
            "voucher",
            "--keys",
            str(keys),
            "--out",
            str(voucher_path),
            "--license-id",
            lic.license_id,
            "--credits",
            "40",
        ],
    )
    assert topped.exit_code == 0, topped.output
    voucher = parse_voucher(verify_signed(voucher_path.read_bytes(), trusted))
    assert voucher.license_id == lic.license_id and voucher.micro == 40_000_000
    listed = runner.invoke(cli.app, ["list", "--keys", str(keys)])
    lines = listed.output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["license", "voucher"]
    assert lines[1].split("\t")[1] == voucher.voucher_id


def test_the_appliance_never_imports_the_vendor_tool() -> None:
    offenders = []
    for path in (ROOT / "appliance").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "enclave_vendor" for name in names):
                offenders.append(str(path))
    assert offenders == []


def _run(*argv: str) -> Result:
    vendor_tool()
    cli = importlib.import_module("enclave_vendor.cli")
    return CliRunner().invoke(cli.app, list(argv))


def _refused(result: Result, code: str) -> str:
    """The one line a refused command prints (no traceback), exit status 1."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    made = _run("keygen", "--keys", str(tmp_path / "keys"))
    assert made.exit_code == 0, made.output
    return tmp_path / "keys"


def _license(keys: Path, out: Path, *options: str) -> Result:
    return _run("license", "--keys", str(keys), "--out", str(out), "--customer", "ACME", *options)


def _register(keys: Path) -> str:
    register = keys / "issued.jsonl"
    return register.read_text("utf-8") if register.exists() else ""


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (("--seats", "0"), "--seats 0"),
        (("--license-id", "lic 1/../x"), "--license-id"),
        (("--days", "999999999"), "--days 999999999"),
        (("--days", "0"), "--days 0"),
        (("--days", "-100"), "--days -100"),
        (("--credits-monthly", "Infinity"), "--credits-monthly"),
        (("--credits-once", "10000000000000"), "--credits-once"),
        (("--credits-once", "-5"), "--credits-once"),
        (("--grace-days", "400"), "--grace-days 400"),
        (("--evaluation-days", "0"), "--evaluation-days 0"),
        (("--min-price", "cloud=1,2"), "--min-price 'cloud=1,2'"),
        (("--min-price", "local=1"), "--min-price 'local=1'"),
        (("--min-price", "local=1,2", "--min-price", "local=3,4"), "local is given twice"),
        (("--min-price", "remote=1,NaN"), "--min-price: 'NaN' is not a finite"),
    ],
)
def test_a_license_the_appliance_would_refuse_is_never_signed(
    keys: Path, tmp_path: Path, options: tuple[str, ...], names: str
) -> None:
    before = _register(keys)
    out = tmp_path / "refused.lic"
    line = _refused(_license(keys, out, *options), "invalid_option")
    assert names in line
    assert not out.exists()
    assert _register(keys) == before


def test_the_limits_are_the_appliances_own(keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.lic"
    over = _license(keys, out, "--credits-once", "1000000000000.000001")
    assert "1,000,000,000,000" in _refused(over, "invalid_option")
    _refused(_license(keys, out, "--days", "36526"), "invalid_option")
    assert not out.exists()
    # The largest grant the appliance holds, for the longest term, is issued and accepted.
    done = _license(keys, out, "--credits-once", "1000000000000", "--days", "36525")
    assert done.exit_code == 0, done.output
    lic = parse_license(verify_signed(out.read_bytes(), load_vendor_keys(keys / PUBLIC)))
    assert lic.once_micro == 10**18
    assert (lic.expires_at - lic.not_before).days == 36525


def test_keygen_never_replaces_a_key(keys: Path) -> None:
    private, public = (keys / "vendor-ed25519.key").read_bytes(), (keys / PUBLIC).read_bytes()
    line = _refused(_run("keygen", "--keys", str(keys)), "keys_exist")
    assert "vendor-ed25519.key" in line
    assert (keys / "vendor-ed25519.key").read_bytes() == private
    assert (keys / PUBLIC).read_bytes() == public


def test_a_license_id_is_issued_once(keys: Path, tmp_path: Path) -> None:
    assert _license(keys, tmp_path / "a.lic", "--license-id", "acme-2026").exit_code == 0
    before = _register(keys)
    again = _license(keys, tmp_path / "b.lic", "--license-id", "acme-2026")
    assert "acme-2026" in _refused(again, "license_id_taken")
    assert not (tmp_path / "b.lic").exists()
    assert _register(keys) == before


def _voucher(keys: Path, out: Path, license_id: str, *options: str) -> Result:
    return _run(
        *("voucher", "--keys", str(keys), "--out", str(out)),
        *("--license-id", license_id, "--credits", "5", *options),
    )


def test_a_voucher_is_for_an_issued_license_unless_forced(keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    line = _refused(_voucher(keys, out, "lic-never-issued"), "unknown_license")
    assert "--force-unknown-license" in line
    assert not out.exists() and _register(keys) == ""
    # A vendor who lost the register can still top up a license it issued.
    forced = _voucher(keys, out, "lic-never-issued", "--force-unknown-license")
    assert forced.exit_code == 0, forced.output
    voucher = parse_voucher(verify_signed(out.read_bytes(), load_vendor_keys(keys / PUBLIC)))
    assert voucher.license_id == "lic-never-issued"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (("--days", "0"), "invalid_option"),
        (("--days", "999999999"), "invalid_option"),
        (("--credits", "0"), "invalid_option"),
    ],
)
def test_a_voucher_the_appliance_would_refuse_is_never_signed(
    keys: Path, tmp_path: Path, options: tuple[str, ...], code: str
) -> None:
    assert _license(keys, tmp_path / "l.lic", "--license-id", "lic-1").exit_code == 0
    before = _register(keys)
    out = tmp_path / "v.json"
    _refused(_voucher(keys, out, "lic-1", *options), code)
    assert not out.exists() and _register(keys) == before


def test_missing_keys_and_unwritable_output_are_one_line(keys: Path, tmp_path: Path) -> None:
    _refused(_run("list", "--keys", str(tmp_path / "nowhere")), "no_vendor_key")
    _refused(_license(tmp_path / "nowhere", tmp_path / "l.lic"), "no_vendor_key")
    _refused(_license(keys, tmp_path / "no-such-folder" / "l.lic"), "invalid_option")
    assert _register(keys) == ""


def test_the_console_command_reports_parser_errors_on_one_line(keys: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(VENDOR_DIR), str(ROOT)])}
    base = [sys.executable, "-m", "enclave_vendor", "license", "--keys", str(keys)]
    for extra, status, code in [
        (["--seats", "many"], 2, "invalid_option"),
        (["--seats", "0"], 1, "invalid_option"),
    ]:
        done = subprocess.run(
            [*base, "--out", str(tmp_path / "l.lic"), "--customer", "ACME", *extra],
            capture_output=True, text=True, check=False, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == status, done.stderr
        assert done.stderr.startswith(f"error: {code}: ")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "l.lic").exists()
