"""The daily license check runs on its own thread: an idle appliance (no model call at all)
still moves valid → expiring → grace → read-only, gives the expiry notices and releases
reservations a crash left behind. Time is an injected clock; the schedule looks every 20 ms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from appliance import Appliance
from appliance.credits.metering import Metering, build_metering
from appliance.credits.models import CreditReservation
from appliance.credits.notifications import NotificationService
from appliance.errors import StorageError
from appliance.identity.users import UserService
from appliance.licensing.schedule import DailyCheck
from appliance.licensing.service import LicenseState
from tests.appliance.licensing.license_world import licensed_settings, open_appliance

POLL = 0.02


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the schedule did not run in time"
        time.sleep(POLL)


@pytest.fixture
def appliance(home_dir: Path, issuer: Any) -> Iterator[Appliance]:
    app = open_appliance(licensed_settings(home_dir, issuer, reservation_expiry_seconds=3600))
    yield app
    app.seal()


@pytest.fixture
def start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock(start: datetime) -> Clock:
    return Clock(start)


@pytest.fixture
def metering(appliance: Appliance, clock: Clock) -> Iterator[Metering]:
    built = build_metering(
        appliance.db, appliance.settings, UserService(appliance.db), clock=clock, poll_s=POLL
    )
    yield built
    built.stop()


def _advance(metering: Metering, clock: Clock, to: datetime) -> None:
    """Move the clock and wait for the schedule's next check (no model call involved)."""
    runs = metering.schedule.runs
    clock.now = to
    _wait_for(lambda: metering.schedule.runs > runs)


def _kinds(appliance: Appliance) -> list[str]:
    notices = NotificationService(appliance.db).list_for(1, is_admin=True)
    return sorted(n["kind"] for n in notices if n["kind"].startswith("license_"))


def test_an_idle_appliance_moves_through_the_states_on_the_schedule(
    appliance: Appliance, issuer: Any, metering: Metering, clock: Clock, start: datetime
) -> None:
    _, data = issuer.issue_license(customer="ACME", not_before=start, days=60, grace_days=10)
    metering.license.import_license(data)
    metering.start()  # the check at unseal, then the thread
    assert metering.schedule.alive()
    assert metering.license.status().state is LicenseState.VALID
    seen = []
    for day in (31, 53, 59, 61, 71):
        _advance(metering, clock, start + timedelta(days=day, hours=1))
        seen.append(metering.license.status().state)
    assert seen == [
        LicenseState.EXPIRING,
        LicenseState.EXPIRING,
        LicenseState.EXPIRING,
        LicenseState.GRACE,
        LicenseState.READ_ONLY,
    ]
    assert _kinds(appliance) == [
        "license_expiring",
        "license_expiring",
        "license_expiring",
        "license_grace",
        "license_read_only",
    ]
    # Within the day nothing runs again, however often the thread looks.
    runs = metering.schedule.runs
    clock.now += timedelta(hours=23)
    time.sleep(POLL * 10)
    assert metering.schedule.runs == runs


def test_the_schedule_releases_reservations_left_by_a_crash(
    appliance: Appliance, issuer: Any, metering: Metering, clock: Clock, start: datetime
) -> None:
    _, data = issuer.issue_license(customer="ACME", not_before=start, credits_once="10")
    metering.license.import_license(data)
    metering.start()
    hold = metering.meter.reserve(
        principal="user:1", provider="local", model="smol", prompt_tokens=100, max_tokens=100
    )
    assert hold is not None and metering.meter.balance().reserved == hold.amount
    _advance(metering, clock, start + timedelta(days=1, hours=2))  # past the 1 h expiry
    assert metering.meter.balance().reserved == 0
    with appliance.db.read() as session:
        state = session.scalar(
            select(CreditReservation.state).where(CreditReservation.id == hold.id)
        )
    assert state == "expired"
    assert metering.meter.verify().ok


def test_a_failing_check_is_retried_and_stop_ends_the_thread() -> None:
    calls: list[int] = []
    done = threading.Event()

    def run() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("Database write failed: disk I/O error.")
        done.set()

    schedule = DailyCheck(lambda: not done.is_set(), run, poll_s=POLL)
    schedule.start()
    assert done.wait(10)
    schedule.stop()
    assert not schedule.alive()
    assert len(calls) == 2 and schedule.runs == 1


def test_sealing_stops_the_appliance_schedule(appliance: Appliance) -> None:
    schedule = appliance.services.metering.schedule
    assert schedule.alive()
    appliance.seal()
    assert not schedule.alive()
