"""The vendor tool end to end: keygen, license, voucher, list — and files it signs are accepted
by an appliance trusting its key. The appliance never imports it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from typer.testing import CliRunner

from appliance.licensing.document import parse_license, parse_voucher, verify_signed
from appliance.licensing.keys import load_vendor_keys
from tests.appliance.licensing.license_world import ROOT, vendor_tool


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
