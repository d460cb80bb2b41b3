"""Setting the clock back cannot extend a license, through the real schedule: the rollback makes
a check due at once (so it is detected and reported while the process runs), and the days
keep counting — by the monotonic clock — while the system clock stays behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appliance import Appliance
from appliance.credits.notifications import NotificationService
from appliance.licensing.keys import load_vendor_keys
from appliance.licensing.schedule import DailyCheck
from appliance.licensing.service import LicenseService, LicenseState

POLL = 0.02


class Time:
    """A wall clock that can be set back, and a monotonic clock that only moves forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.tick = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick

    def passes(self, delta: timedelta) -> None:
        self.tick += delta.total_seconds()
        self.now += delta


def _service(appliance: Appliance, issuer: Any, clock: Time) -> LicenseService:
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    machine = appliance.services.metering.license.machine_id
    return LicenseService(appliance.db, keys, machine, clock=clock.wall, monotonic=clock.monotonic)


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the schedule did not run in time"
        time.sleep(POLL)


def _rollback_notices(appliance: Appliance) -> int:
    notices = NotificationService(appliance.db).list_for(1, is_admin=True)
    return sum(1 for n in notices if n["kind"] == "clock_rollback")


@pytest.fixture
def clock() -> Time:
    return Time(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def service(appliance: Appliance, issuer: Any, clock: Time) -> LicenseService:
    _, data = issuer.issue_license(customer="ACME", not_before=clock.now, days=60)
    licensing = _service(appliance, issuer, clock)
    licensing.import_license(data)
    return licensing


@pytest.fixture
def schedule(service: LicenseService) -> Iterator[DailyCheck]:
    service.check()  # the check at unseal, as Metering.start does
    daily = DailyCheck(service.check_due, service.check, poll_s=POLL)
    daily.start()
    yield daily
    daily.stop()


def _step(schedule: DailyCheck, clock: Time, change: Callable[[], None]) -> None:
    runs = schedule.runs
    change()
    _wait_for(lambda: schedule.runs > runs)


def test_setting_the_clock_back_is_reported_and_does_not_extend_the_license(
    appliance: Appliance, service: LicenseService, schedule: DailyCheck, clock: Time
) -> None:
    start = clock.now
    days_before = service.status().days_left
    assert days_before is not None

    def set_back() -> None:
        clock.now -= timedelta(days=40)

    _step(schedule, clock, set_back)  # the check runs within a poll, not a day later
    status = service.status()
    assert status.rollback_detected_at is not None
    assert _rollback_notices(appliance) == 1
    for _ in range(39):  # 39 real days pass; the system clock stays 40 days behind
        _step(schedule, clock, lambda: clock.passes(timedelta(days=1, minutes=1)))
    status = service.status()
    assert status.now >= start + timedelta(days=39)
    assert status.days_left is not None and status.days_left <= days_before - 39
    assert status.state is LicenseState.EXPIRING
    assert _rollback_notices(appliance) == 1  # one rollback, one notice (not one a day)
    # Between checks the days count as well.
    clock.passes(timedelta(hours=5))
    assert service.status().now >= start + timedelta(days=39, hours=5)


def test_time_counts_once_when_another_process_checks_in_between(
    appliance: Appliance, issuer: Any, service: LicenseService, clock: Time
) -> None:
    start = clock.now
    service.check()
    clock.passes(timedelta(hours=12))
    _service(appliance, issuer, clock).check()  # e.g. the CLI: it moves the stored mark
    clock.passes(timedelta(hours=12))
    clock.now -= timedelta(days=40)
    status = service.check()
    assert status.rollback_detected_at is not None
    # A day has passed: not half a day (the stored mark) nor a day and a half (both counted).
    assert abs(status.now - (start + timedelta(days=1))) < timedelta(minutes=1)


def test_a_check_is_due_when_the_clock_is_behind_the_last_check(
    service: LicenseService, clock: Time
) -> None:
    service.check()
    assert not service.check_due()
    clock.now -= timedelta(minutes=1)
    assert service.check_due()
