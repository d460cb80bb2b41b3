"""kill -9 between reserve and settle: after a restart the reservation is released and the
ledger is whole — at once, as its process has ended, not only once it expires; a hold of a
process still running (a server, while a CLI command unseals the same home) stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from appliance import Appliance
from appliance.credits.metering import build_metering
from appliance.credits.models import CreditReservation
from tests.appliance.licensing.license_world import (
    PASSPHRASE,
    ROOT,
    licensed_settings,
    make_issuer,
    open_appliance,
)

CHILD = """
import sys, time
from pathlib import Path
from appliance import Appliance
from tests.conftest import PASSPHRASE, make_settings
home, pem, expiry = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Appliance(make_settings(Path(home), license_public_keys=Path(pem), reservation_expiry_seconds=expiry))
app.unseal(PASSPHRASE)
hold = app.services.metering.meter.reserve(
    principal="user:1", provider="local", model="smol", prompt_tokens=1000, max_tokens=1000
)
print("reserved", hold.id, flush=True)
time.sleep(120)
"""


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


def licensed_home(home_dir: Path, issuer: Any, **overrides: Any) -> tuple[Any, int]:
    """A home with 10 credits, sealed: its settings and the full balance (micro-credits)."""
    settings = licensed_settings(home_dir, issuer, **overrides)
    app = open_appliance(settings)
    _, data = issuer.issue_license(customer="ACME", credits_once="10")
    app.services.metering.license.import_license(data)
    full = app.services.metering.meter.balance().balance
    app.seal()
    return settings, full


def reserving_child(
    home_dir: Path, issuer: Any, expiry_s: int
) -> tuple[subprocess.Popen[str], str]:
    """A process that unseals the home, reserves, and sleeps: it and its hold's id."""
    pem = str(issuer.directory / "vendor-ed25519.pem")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home_dir), pem, str(expiry_s)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("COV")},
    )
    try:
        assert child.stdout is not None
        line: list[str] = []
        for raw in child.stdout:  # log lines first, then ours
            line = raw.split()
            if line[:1] == ["reserved"]:
                break
        assert line[:1] == ["reserved"], line
    except BaseException:
        kill(child)
        raise
    return child, line[1]


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL


def hold_state(app: Appliance, hold_id: str) -> str | None:
    with app.db.read() as session:
        return session.scalar(
            select(CreditReservation.state).where(CreditReservation.id == hold_id)
        )


def test_kill_9_between_reserve_and_settle_releases_at_restart(home_dir: Path, issuer: Any) -> None:
    settings, full_balance = licensed_home(home_dir, issuer, reservation_expiry_seconds=1)
    child, hold_id = reserving_child(home_dir, issuer, 1)
    kill(child)

    time.sleep(1.2)  # past the reservation's expiry
    restarted = Appliance(settings)
    restarted.unseal(PASSPHRASE)
    try:
        meter = restarted.services.metering.meter  # services start: stale holds released
        assert restarted.db.integrity_check() == ["ok"]
        balance = meter.balance()
        assert (balance.balance, balance.reserved) == (full_balance, 0)
        assert hold_state(restarted, hold_id) == "expired"
        entries = meter.entries()
        assert [(e["kind"], e["reservation_id"]) for e in entries[-2:]] == [
            ("reserve", hold_id),
            ("release", hold_id),
        ]
        assert entries[-1]["details"] == {"reason": "expired"}
        assert meter.verify().ok
    finally:
        restarted.seal()


def test_kill_9_releases_at_the_next_start_without_waiting_for_expiry(
    home_dir: Path, issuer: Any
) -> None:
    settings, full_balance = licensed_home(home_dir, issuer)
    assert settings.reservation_expiry_seconds == 3600  # the default, not lowered
    child, hold_id = reserving_child(home_dir, issuer, settings.reservation_expiry_seconds)
    kill(child)

    restarted = Appliance(settings)
    restarted.unseal(PASSPHRASE)
    try:
        meter = restarted.services.metering.meter  # services start: the dead process's hold
        balance = meter.balance()
        assert (balance.balance, balance.reserved) == (full_balance, 0)
        assert hold_state(restarted, hold_id) == "expired"  # a late settle would still charge
        last = meter.entries()[-1]
        assert (last["kind"], last["reservation_id"]) == ("release", hold_id)
        assert last["details"] == {"reason": "process_ended"}
        assert meter.verify().ok
    finally:
        restarted.seal()


def test_a_hold_of_a_live_process_stays_until_the_process_ends(home_dir: Path, issuer: Any) -> None:
    settings, full_balance = licensed_home(home_dir, issuer)
    child, hold_id = reserving_child(home_dir, issuer, settings.reservation_expiry_seconds)
    # A second process unseals the same home while the first still runs (a CLI command
    # beside the server): the server's hold is not released, at start nor at a poll.
    other = Appliance(settings)
    other.unseal(PASSPHRASE)
    # Its schedule polls every 50 ms (the appliance's every 10 minutes); the daily license
    # check ran at start and is not due again for a day.
    metering = build_metering(other.db, settings, other.services.users, poll_s=0.05)
    metering.start()
    try:
        try:
            time.sleep(0.5)
            assert hold_state(other, hold_id) == "open"
            held = metering.meter.balance()
            assert held.balance == full_balance and held.reserved > 0
        finally:
            kill(child)
        deadline = time.monotonic() + 10
        while hold_state(other, hold_id) == "open" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hold_state(other, hold_id) == "expired"
        assert metering.meter.balance().reserved == 0
        assert metering.meter.entries()[-1]["details"] == {"reason": "process_ended"}
        assert metering.schedule.runs == 0  # released by a poll, not by a daily check
    finally:
        metering.stop()
        other.seal()
