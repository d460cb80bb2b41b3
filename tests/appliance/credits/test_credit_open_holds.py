"""The reservation table holds the calls in flight only (migration 0014): a settle or release
takes its hold out, the expiry sweep keeps an expired hold 30 days (a late settle still
charges it, once) and then forgets it; the migration keeps open and expired holds, deletes the
closed ones and drops the open-hold index, which a downgrade puts back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, text

from appliance import Appliance
from appliance.credits.metering import Metering, build_metering
from appliance.credits.models import CreditLedgerEntry, CreditReservation
from appliance.identity.users import UserService
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from appliance.store.migrate import (
    SCRIPT_LOCATION,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
)
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance
from tests.appliance.migration_copies import migrations_before


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def appliance(home_dir: Path, tmp_path: Path) -> Iterator[Appliance]:
    issuer = make_issuer(tmp_path / "vendor")
    app = open_appliance(licensed_settings(home_dir, issuer, reservation_expiry_seconds=3600))
    _, data = issuer.issue_license(customer="ACME", credits_once="10")
    app.services.metering.license.import_license(data)
    yield app
    app.seal()


@pytest.fixture
def metering(appliance: Appliance, clock: Clock) -> Iterator[Metering]:
    built = build_metering(appliance.db, appliance.settings, UserService(appliance.db), clock=clock)
    yield built
    built.stop()


def _reserve(metering: Metering) -> Any:
    hold = metering.meter.reserve(
        principal="user:1", provider="local", model="smol", prompt_tokens=100, max_tokens=100
    )
    assert hold is not None
    return hold


def _holds(appliance: Appliance) -> dict[str, str]:
    with appliance.db.read() as session:
        rows = session.execute(select(CreditReservation.id, CreditReservation.state)).all()
    return {hold_id: state for hold_id, state in rows}


def _entries(appliance: Appliance) -> int:
    with appliance.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(CreditLedgerEntry)) or 0)


def test_a_settle_or_release_takes_its_hold_out(appliance: Appliance, metering: Metering) -> None:
    meter = metering.meter
    settled, released, in_flight = _reserve(metering), _reserve(metering), _reserve(metering)
    assert _holds(appliance) == dict.fromkeys((settled.id, released.id, in_flight.id), "open")
    assert meter.settle(settled.id, 100, 50) > 0
    meter.release(released.id)
    assert _holds(appliance) == {in_flight.id: "open"}
    assert meter.balance().reserved == in_flight.amount

    # Closed (or never made) holds are no longer held: nothing is charged, nothing is written.
    before, entries = meter.balance(), _entries(appliance)
    assert meter.settle(settled.id, 100, 50) == 0
    assert meter.settle(released.id, 100, 50) == 0
    assert meter.settle("0" * 32, 100, 50) == 0
    meter.release(settled.id)
    assert (meter.balance(), _entries(appliance)) == (before, entries)
    assert meter.verify().ok


def test_an_expired_hold_is_charged_once_late_and_forgotten_after_30_days(
    appliance: Appliance, metering: Metering, clock: Clock
) -> None:
    meter = metering.meter
    late, forgotten = _reserve(metering), _reserve(metering)
    clock.now += timedelta(hours=2)  # past the 1 h expiry
    assert meter.expire_stale() == 2
    assert _holds(appliance) == {late.id: "expired", forgotten.id: "expired"}
    assert meter.balance().reserved == 0

    balance = meter.balance().balance
    charged = meter.settle(late.id, 100, 50)
    assert charged > 0 and meter.balance().balance == balance - charged
    assert meter.settle(late.id, 100, 50) == 0  # charged once
    assert _holds(appliance) == {forgotten.id: "expired"}

    clock.now += timedelta(days=29)
    assert meter.expire_stale() == 0
    assert _holds(appliance) == {forgotten.id: "expired"}
    clock.now += timedelta(days=2)
    meter.expire_stale()
    assert _holds(appliance) == {}
    assert meter.settle(forgotten.id, 100, 50) == 0
    assert meter.verify().ok


def _before_open_holds(tmp_path: Path) -> Path:
    """The migrations up to 0013, as the previous release shipped them."""
    return migrations_before(tmp_path, "0014")


def _indexes(db: Database) -> set[str]:
    with db.read() as session:
        return set(
            session.scalars(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'credit_reservation'"
                )
            )
        )


def test_the_migration_keeps_open_and_expired_holds_and_drops_the_index(tmp_path: Path) -> None:
    dek = DataKey.generate()
    db = Database(path=tmp_path / "enclave.db", dek=dek)
    try:
        migrate(db, dek, None, _before_open_holds(tmp_path))
        assert current_revision(db) == "0013_agent_tool_network"
        assert _indexes(db) == {"ix_credit_reservation_open"}
        with db.write() as session:
            for n, state in enumerate(("open", "expired", "settled", "released")):
                session.execute(
                    text(
                        "INSERT INTO credit_reservation (id, created_at, expires_at, amount, "
                        "state, provider, model) VALUES (:id, '2026-12-01 09:00:00.000000', "
                        "'2026-12-01 10:00:00.000000', 1000, :state, 'local', 'm')"
                    ),
                    {"id": f"{n:032x}", "state": state},
                )

        migrate(db, dek, None)
        assert current_revision(db) == head_revision()
        with db.read() as session:
            states = sorted(session.scalars(text("SELECT state FROM credit_reservation")))
        assert states == ["expired", "open"]
        assert _indexes(db) == set()

        config = alembic_config(SCRIPT_LOCATION)
        with db.write() as session:
            config.attributes["connection"] = session.connection()
            command.downgrade(config, "0013_agent_tool_network")
        assert current_revision(db) == "0013_agent_tool_network"
        assert _indexes(db) == {"ix_credit_reservation_open"}
    finally:
        db.dispose()
