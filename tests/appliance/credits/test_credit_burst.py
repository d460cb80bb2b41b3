"""Burst: 1,000 concurrent reservations (threads, then several processes on the same
encrypted file) against a balance covering exactly N of them → exactly N succeed, the balance
never goes negative, and the ledger verifies."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from appliance import Appliance
from appliance.credits.errors import CreditsExhausted
from appliance.credits.models import CreditLedgerEntry, CreditReservation
from tests.appliance.credits.burst_child import reserve_many
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance

ATTEMPTS = 1000
CREDIT = 1_000_000


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


def _licensed(home: Path, issuer: Any, credits: int) -> Appliance:
    app = open_appliance(licensed_settings(home, issuer))
    _, data = issuer.issue_license(customer="ACME", credits_once=str(credits))
    metering = app.services.metering
    metering.license.import_license(data)
    metering.prices.set("local/*", "1", "1")  # 500 + 500 tokens = exactly 1 credit
    return app


@pytest.fixture
def threads_appliance(home_dir: Path, issuer: Any) -> Iterator[Appliance]:
    app = _licensed(home_dir, issuer, 300)
    yield app
    app.seal()


def _assert_consistent(app: Appliance, granted: int) -> None:
    meter = app.services.metering.meter
    balance = meter.balance()
    assert balance.reserved == granted * CREDIT
    assert balance.available == 0
    with app.db.read() as session:
        rows = session.execute(
            select(CreditLedgerEntry.balance_after, CreditLedgerEntry.reserved_after)
        ).all()
        held = session.scalars(
            select(CreditReservation.amount).where(CreditReservation.state == "open")
        ).all()
    assert all(b >= 0 and 0 <= r <= b for b, r in rows)
    assert len(held) == granted and sum(held) == balance.reserved
    result = meter.verify()
    assert result.ok, result
    assert result.count == granted + 1  # the grant, then one entry per reservation


def test_thread_burst_grants_exactly_what_the_balance_covers(
    threads_appliance: Appliance,
) -> None:
    meter = threads_appliance.services.metering.meter

    def attempt(_: int) -> bool:
        try:
            meter.reserve(
                principal="user:1",
                provider="local",
                model="smol",
                prompt_tokens=500,
                max_tokens=500,
            )
        except CreditsExhausted:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(ATTEMPTS)))
    assert outcomes.count(True) == 300
    _assert_consistent(threads_appliance, 300)


def test_process_burst_grants_exactly_what_the_balance_covers(home_dir: Path, issuer: Any) -> None:
    app = _licensed(home_dir, issuer, 400)
    try:
        ctx = multiprocessing.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        key_hex = app.current_key().raw.hex()
        pem = str(issuer.directory / "vendor-ed25519.pem")
        workers = [
            ctx.Process(
                target=reserve_many, args=(str(home_dir), key_hex, pem, ATTEMPTS // 4, go, results)
            )
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        go.set()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
            assert worker.exitcode == 0
        assert sum(g for g, _ in outcomes) == 400
        assert sum(g + r for g, r in outcomes) == ATTEMPTS
        _assert_consistent(app, 400)
    finally:
        app.seal()
