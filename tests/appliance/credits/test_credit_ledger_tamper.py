"""Editing any ledger row (any field) → verification fails at exactly that row, in the API and
in `enclave credits verify`; a deleted tail is found too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from appliance import Appliance
from appliance.credits.models import CreditLedgerEntry
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance
from tests.conftest import run_cli

EDITS: list[tuple[str, Any]] = [
    ("amount", lambda v: v + 1),
    ("balance_after", lambda v: v + 1_000_000),
    ("kind", lambda v: "grant" if v != "grant" else "voucher"),
    ("created_at", lambda v: v + timedelta(seconds=1)),
    ("principal", lambda v: "user:666"),
    ("model", lambda v: "other-model"),
    ("reserved_after", lambda v: v + 1),
    ("prev_hash", lambda v: "f" * 64),
    ("entry_hash", lambda v: "0" * 64),
]


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


@pytest.fixture
def appliance(home_dir: Path, issuer: Any) -> Iterator[Appliance]:
    app = open_appliance(licensed_settings(home_dir, issuer))
    lic, data = issuer.issue_license(customer="ACME", credits_once="10")
    metering = app.services.metering
    metering.license.import_license(data)
    for tokens in (100, 200, 300):
        hold = metering.meter.reserve(
            principal="user:1", provider="local", model="smol", prompt_tokens=tokens, max_tokens=50
        )
        assert hold is not None
        metering.meter.settle(hold.id, tokens, 10)
    _, voucher = issuer.issue_voucher(lic.license_id, "5")
    metering.meter.redeem(metering.license.verify_voucher(voucher))
    metering.meter.adjust(-1000, "test correction", "user:1")
    yield app
    app.seal()


def _row(app: Appliance, position: int) -> CreditLedgerEntry:
    with app.db.read() as session:
        row = session.get(CreditLedgerEntry, position)
    assert row is not None
    return row


def _set(app: Appliance, position: int, column: str, value: Any) -> None:
    with app.db.write() as session:
        session.execute(
            update(CreditLedgerEntry)
            .where(CreditLedgerEntry.id == position)
            .values({column: value})
        )


def test_editing_any_row_fails_verification_at_that_row(appliance: Appliance) -> None:
    meter = appliance.services.metering.meter
    total = meter.verify()
    assert total.ok and total.count == 9
    for position in range(1, total.count + 1):
        column, change = EDITS[(position - 1) % len(EDITS)]
        original = getattr(_row(appliance, position), column)
        changed = change(original if original is not None else 0)
        _set(appliance, position, column, changed)
        result = meter.verify()
        assert (result.ok, result.first_bad) == (False, position), (position, column, result)
        _set(appliance, position, column, original)
        assert meter.verify().ok


def test_editing_or_clearing_what_a_settle_released_fails_at_that_row(
    appliance: Appliance,
) -> None:
    meter = appliance.services.metering.meter
    with appliance.db.read() as session:
        settles = session.scalars(
            select(CreditLedgerEntry).where(CreditLedgerEntry.released.is_not(None))
        ).all()
    assert len(settles) == 3 and all(e.kind == "settle" and e.released for e in settles)
    for entry in settles:
        for changed in (entry.released + 1, 0, None):
            _set(appliance, entry.id, "released", changed)
            result = meter.verify()
            assert (result.ok, result.first_bad) == (False, entry.id), (entry.id, changed)
        _set(appliance, entry.id, "released", entry.released)
        assert meter.verify().ok
    # Adding one to an entry that had none (e.g. the grant) is found too.
    _set(appliance, 1, "released", 1)
    assert (meter.verify().ok, meter.verify().first_bad) == (False, 1)


def test_a_deleted_last_entry_is_found(appliance: Appliance) -> None:
    meter = appliance.services.metering.meter
    with appliance.db.write() as session:
        last = session.scalar(select(CreditLedgerEntry.id).order_by(CreditLedgerEntry.id.desc()))
        session.execute(delete(CreditLedgerEntry).where(CreditLedgerEntry.id == last))
    result = meter.verify()
    assert not result.ok and result.first_bad == last and "missing" in (result.reason or "")


def test_cli_verify_reports_ok_then_the_first_bad_entry(
    appliance: Appliance,
    issuer: Any,
    home_dir: Path,
    passphrase_file: Path,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENCLAVE_LICENSE_PUBLIC_KEYS", str(issuer.directory / "vendor-ed25519.pem"))
    args = ("credits", "verify", "--home", home_dir, "--passphrase-file", passphrase_file)
    good = run_cli(*args)
    assert good.exit_code == 0, good.output
    assert good.output.strip().endswith("ok 9 entries")
    _set(appliance, 5, "amount", 999)
    bad = run_cli(*args)
    assert bad.exit_code == 1
    assert "credit_ledger_broken: entry 5:" in bad.output
