"""kill -9 between reserve and settle: after a restart the reservation is released and the
ledger is whole."""

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
home, pem = sys.argv[1], sys.argv[2]
app = Appliance(make_settings(Path(home), license_public_keys=Path(pem), reservation_expiry_seconds=1))
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


def test_kill_9_between_reserve_and_settle_releases_at_restart(home_dir: Path, issuer: Any) -> None:
    settings = licensed_settings(home_dir, issuer, reservation_expiry_seconds=1)
    app = open_appliance(settings)
    _, data = issuer.issue_license(customer="ACME", credits_once="10")
    app.services.metering.license.import_license(data)
    full = app.services.metering.meter.balance()
    app.seal()

    pem = str(issuer.directory / "vendor-ed25519.pem")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home_dir), pem],
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
        hold_id = line[1]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    time.sleep(1.2)  # past the reservation's expiry
    restarted = Appliance(settings)
    restarted.unseal(PASSPHRASE)
    try:
        meter = restarted.services.metering.meter  # services start: stale holds released
        assert restarted.db.integrity_check() == ["ok"]
        balance = meter.balance()
        assert (balance.balance, balance.reserved) == (full.balance, 0)
        with restarted.db.read() as session:
            state = session.scalar(
                select(CreditReservation.state).where(CreditReservation.id == hold_id)
            )
        assert state == "expired"
        entries = meter.entries()
        assert [(e["kind"], e["reservation_id"]) for e in entries[-2:]] == [
            ("reserve", hold_id),
            ("release", hold_id),
        ]
        assert entries[-1]["details"] == {"reason": "expired"}
        assert meter.verify().ok
    finally:
        restarted.seal()
