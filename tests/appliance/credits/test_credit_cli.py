"""`enclave credits balance`, `redeem` and `statement` against a real home."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance
from tests.conftest import run_cli


def test_balance_redeem_and_statement(
    home_dir: Path,
    tmp_path: Path,
    passphrase_file: Path,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer: Any = make_issuer(tmp_path / "vendor")
    monkeypatch.setenv("ENCLAVE_LICENSE_PUBLIC_KEYS", str(issuer.directory / "vendor-ed25519.pem"))
    app = open_appliance(licensed_settings(home_dir, issuer))
    lic, data = issuer.issue_license(customer="ACME", credits_once="3")
    services = app.services
    services.metering.license.import_license(data)
    user = services.users.create_user("carol", "a long enough password", "member")
    group = services.groups.create_group("finance")
    services.groups.add_member(group.id, user.id)
    hold = services.metering.meter.reserve(
        principal=f"user:{user.id}", provider="local", model="m", prompt_tokens=1000, max_tokens=10
    )
    assert hold is not None
    services.metering.meter.settle(hold.id, 1000, 10)
    app.seal()
    home = ("--home", home_dir, "--passphrase-file", passphrase_file)

    _, voucher = issuer.issue_voucher(lic.license_id, "2")
    path = tmp_path / "voucher.json"
    path.write_bytes(voucher)
    redeemed = run_cli("credits", "redeem", path, *home)
    assert redeemed.exit_code == 0, redeemed.output
    again = run_cli("credits", "redeem", path, *home)
    assert again.exit_code == 1 and "voucher_already_redeemed" in again.output

    shown = run_cli("credits", "balance", *home)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output[shown.output.index("{") :])
    assert body["balance_micro"] == 5_000_000 - 10_200

    out = tmp_path / "statement.csv"
    month = f"{datetime.now(UTC):%Y-%m}"
    written = run_cli("credits", "statement", "--month", month, "--out", out, *home)
    assert written.exit_code == 0, written.output
    assert out.stat().st_mode & 0o777 == 0o600
    rows = out.read_text().splitlines()
    assert rows[1].split(",")[:5] == ["finance", "carol", "local/m", "1/1", "1"]
    assert rows[-1].startswith("(total),")
    bad = run_cli("credits", "statement", "--month", "soon", "--out", out, *home)
    assert bad.exit_code == 1 and "invalid_request" in bad.output
