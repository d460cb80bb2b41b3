"""`enclave credits verify` only reads: it does not run the license check, the grants or the
expiry sweep that unsealing for other commands starts, so the ledger it checks stays as it was."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from appliance import Appliance
from appliance.credits.models import CreditLedgerEntry, CreditReservation
from tests.appliance.licensing.license_world import (
    PASSPHRASE,
    licensed_settings,
    make_issuer,
    open_appliance,
)
from tests.conftest import run_cli


def ledger_state(app: Appliance) -> tuple[int, list[tuple[str, str]]]:
    """The number of ledger entries and every hold's (id, state), read without the services."""
    with app.db.read() as session:
        count = session.scalar(select(func.count()).select_from(CreditLedgerEntry))
        holds = session.execute(select(CreditReservation.id, CreditReservation.state)).all()
    return int(count or 0), [tuple(h) for h in holds]


def test_verify_appends_nothing_to_the_ledger_it_checks(
    home_dir: Path,
    tmp_path: Path,
    passphrase_file: Path,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer: Any = make_issuer(tmp_path / "vendor")
    settings = licensed_settings(home_dir, issuer, reservation_expiry_seconds=1)
    app = open_appliance(settings)
    _, data = issuer.issue_license(customer="ACME", credits_once="5")
    meter = app.services.metering.meter
    app.services.metering.license.import_license(data)
    # A hold this (live) process leaves open; it expires a second later, so anything that ran
    # the expiry sweep would release it with a ledger entry.
    hold = meter.reserve(
        principal="user:1", provider="local", model="m", prompt_tokens=100, max_tokens=100
    )
    assert hold is not None
    before = ledger_state(app)
    app.seal()
    time.sleep(1.1)

    pem = str(issuer.directory / "vendor-ed25519.pem")
    monkeypatch.setenv("ENCLAVE_LICENSE_PUBLIC_KEYS", pem)
    monkeypatch.setenv("ENCLAVE_RESERVATION_EXPIRY_SECONDS", "1")
    verified = run_cli(
        "credits", "verify", "--home", home_dir, "--passphrase-file", passphrase_file
    )
    assert verified.exit_code == 0, verified.output
    assert verified.output.strip().endswith(f"ok {before[0]} entries")

    again = Appliance(settings)
    again.unseal(PASSPHRASE)
    try:
        assert ledger_state(again) == before
        assert before[1] == [(hold.id, "open")]
    finally:
        again.seal()
