"""The meter's raw write path on a real full disk: ``disk_full``, nothing half-written, and the
ledger still verifies and balances (the home lives on a tiny tmpfs, as in test_disk_full)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from appliance.credits.models import CreditLedgerEntry, CreditReservation
from appliance.errors import DiskFull
from tests.appliance.full_disk import fill_disk
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


def test_reservations_on_a_full_disk_fail_whole(tiny_disk: Path, issuer: Any) -> None:
    app = open_appliance(licensed_settings(tiny_disk / "home", issuer))
    metering = app.services.metering
    metering.license.import_license(issuer.issue_license(customer="ACME", credits_once="1000")[1])

    def reserve() -> int:
        hold = metering.meter.reserve(
            principal="user:1", provider="local", model="smol", prompt_tokens=50, max_tokens=50
        )
        assert hold is not None
        return hold.amount

    amount = 0
    for _ in range(20):  # some before the disk fills
        amount = reserve()
    granted = 20
    filler = fill_disk(tiny_disk)
    with pytest.raises(DiskFull):
        for _ in range(5000):
            reserve()
            granted += 1
    filler.unlink()
    assert app.db.integrity_check() == ["ok"]
    balance = metering.meter.balance()
    with app.db.read() as session:
        open_holds = session.scalar(
            select(func.count())
            .select_from(CreditReservation)
            .where(CreditReservation.state == "open")
        )
        reserves = session.scalar(
            select(func.count())
            .select_from(CreditLedgerEntry)
            .where(CreditLedgerEntry.kind == "reserve")
        )
    assert open_holds == reserves == granted  # each reservation whole, or not at all
    assert (balance.balance, balance.reserved) == (1000 * 1_000_000, granted * amount)
    assert metering.meter.verify().ok
    app.seal()
