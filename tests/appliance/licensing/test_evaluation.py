"""The evaluation license: signed like any license, started once per home, running its days
from the moment it is started (clock high-water mark), and the one shipped in the package."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from appliance import Appliance
from appliance.licensing.document import parse_license, verify_signed
from appliance.licensing.errors import EvaluationUnavailable, LicenseInvalid
from appliance.licensing.evaluation import SHIPPED_EVALUATION
from appliance.licensing.keys import load_vendor_keys
from appliance.licensing.models import LicenseRecord
from appliance.licensing.service import LicenseService, LicenseState
from appliance.web import create_app
from tests.appliance.licensing.license_world import (
    open_appliance,
    vendor_tool,
)
from tests.conftest import make_settings, run_cli


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


START = datetime.now(UTC).replace(microsecond=0)


def evaluation_file(issuer: Any, tmp_path: Path, days: int = 30, **extra: Any) -> Path:
    _, data = issuer.issue_license(
        customer="Evaluation",
        tier="evaluation",
        seats=5,
        days=365,
        grace_days=0,
        credits_once="100",
        evaluation_days=days,
        not_before=START - timedelta(days=1),
        **extra,
    )
    path = tmp_path / "evaluation.lic"
    path.write_bytes(data)
    return path


def service_for(appliance: Appliance, issuer: Any, path: Path, clock: Clock) -> LicenseService:
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    machine = appliance.services.metering.license.machine_id
    return LicenseService(
        appliance.db, keys, machine, clock=clock, monotonic=lambda: 0.0, evaluation_file=path
    )


def test_it_runs_its_days_from_the_start_not_from_signing(
    appliance: Appliance, issuer: Any, tmp_path: Path
) -> None:
    clock = Clock(START + timedelta(days=100))
    service = service_for(appliance, issuer, evaluation_file(issuer, tmp_path), clock)
    offer = service.evaluation_offer()
    assert offer is not None and offer.evaluation_days == 30
    started = service.start_evaluation()
    assert started.expires_at == clock.now + timedelta(days=30)
    status = service.status()
    assert status.license is not None and status.license.expires_at == started.expires_at
    assert status.state is LicenseState.VALID and status.days_left == 30
    # After a restart the activation time comes from the stored record.
    clock.now += timedelta(days=29, hours=23)
    assert service_for(appliance, issuer, tmp_path / "gone.lic", clock).check().state is (
        LicenseState.EXPIRING
    )
    clock.now += timedelta(hours=2)
    assert service.check().state is LicenseState.READ_ONLY


def test_it_starts_once_per_home_and_never_after_a_license(
    appliance: Appliance, issuer: Any, tmp_path: Path
) -> None:
    path = evaluation_file(issuer, tmp_path)
    service = service_for(appliance, issuer, path, Clock(START))
    service.start_evaluation()
    assert service.evaluation_offer() is None
    with pytest.raises(EvaluationUnavailable):
        service.start_evaluation()
    # Importing the same file by hand is the same refusal; nothing changes.
    with pytest.raises(EvaluationUnavailable):
        service.import_license(path.read_bytes())
    _, real = issuer.issue_license(customer="ACME", days=365, not_before=START - timedelta(days=1))
    service.import_license(real)
    with pytest.raises(EvaluationUnavailable):
        service.start_evaluation()
    with appliance.db.read() as session:
        records = session.query(LicenseRecord).order_by(LicenseRecord.id).all()
        assert [(r.active, json.loads(r.document)["payload"]["evaluation"]) for r in records] == [
            (False, True),
            (True, False),
        ]
    assert service.status().license.customer == "ACME"  # type: ignore[union-attr]


def test_a_home_with_a_license_is_offered_no_evaluation(
    appliance: Appliance, issuer: Any, tmp_path: Path
) -> None:
    service = service_for(appliance, issuer, evaluation_file(issuer, tmp_path), Clock(START))
    _, real = issuer.issue_license(customer="ACME", days=365, not_before=START - timedelta(days=1))
    service.import_license(real)
    assert service.evaluation_offer() is None
    with pytest.raises(EvaluationUnavailable):
        service.start_evaluation()


def test_setting_the_clock_back_does_not_extend_it(
    appliance: Appliance, issuer: Any, tmp_path: Path
) -> None:
    clock = Clock(START + timedelta(days=5))
    service = service_for(appliance, issuer, evaluation_file(issuer, tmp_path), clock)
    service.check()  # the appliance has seen day 5
    clock.now = START  # set back before starting
    started = service.start_evaluation()
    assert started.expires_at == START + timedelta(days=35)
    clock.now = START + timedelta(days=36)
    service.check()
    clock.now = START + timedelta(days=1)  # set back after expiry: still expired
    service.invalidate()
    assert service.status().state is LicenseState.READ_ONLY


def test_a_build_without_an_evaluation_offers_none(
    appliance: Appliance, issuer: Any, tmp_path: Path
) -> None:
    service = service_for(appliance, issuer, tmp_path / "missing.lic", Clock(START))
    assert service.evaluation_offer() is None
    with pytest.raises(EvaluationUnavailable, match="ships no evaluation"):
        service.start_evaluation()
    # A normal license where the evaluation should be is not started as one.
    _, real = issuer.issue_license(customer="ACME", days=365, not_before=START - timedelta(days=1))
    (tmp_path / "real.lic").write_bytes(real)
    service = service_for(appliance, issuer, tmp_path / "real.lic", Clock(START))
    assert service.evaluation_offer() is None
    with pytest.raises(EvaluationUnavailable):
        service.start_evaluation()


def test_an_evaluation_flag_without_days_is_malformed(issuer: Any) -> None:
    payload = {
        "kind": "license",
        "license_id": "eval-1",
        "customer": "x",
        "tier": "evaluation",
        "seats": 1,
        "issued_at": START.isoformat(),
        "not_before": START.isoformat(),
        "expires_at": (START + timedelta(days=9)).isoformat(),
        "evaluation": True,
    }
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    with pytest.raises(LicenseInvalid, match="evaluation"):
        parse_license(verify_signed(issuer.sign(payload), keys))


def test_the_vendor_tool_issues_evaluation_licenses(tmp_path: Path) -> None:
    vendor_tool()  # puts packaging/vendor on the path
    from enclave_vendor.cli import app as vendor_cli

    keys, out = tmp_path / "keys", tmp_path / "eval.lic"
    runner = CliRunner()
    assert runner.invoke(vendor_cli, ["keygen", "--keys", str(keys)]).exit_code == 0
    made = runner.invoke(
        vendor_cli,
        [
            *("license", "--keys", str(keys), "--out", str(out), "--customer", "Eval"),
            *("--evaluation-days", "14", "--days", "400"),
        ],
    )
    assert made.exit_code == 0, made.output
    lic = parse_license(
        verify_signed(out.read_bytes(), load_vendor_keys(keys / "vendor-ed25519.pem"))
    )
    assert lic.evaluation and lic.evaluation_days == 14
    assert (lic.expires_at - lic.not_before).days == 400


def test_the_shipped_evaluation_is_signed_by_the_shipped_key(home_dir: Path) -> None:
    lic = parse_license(verify_signed(SHIPPED_EVALUATION.read_bytes(), load_vendor_keys()))
    assert lic.evaluation and lic.evaluation_days == 30
    assert lic.machine_id is None and lic.once_micro > 0 and lic.seats >= 5
    # A fresh appliance with the shipped key (no test key) can start it, through the API.
    app = open_appliance(make_settings(home_dir))
    try:
        admin = app.services.users.create_user("root", "a long enough password", "admin")
        member = app.services.users.create_user("member-one", "another long password", "member")
        tokens = app.services.tokens

        async def api() -> list[tuple[int, Any]]:
            transport = httpx.ASGITransport(app=create_app(app, with_ui=False))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                out = []
                for who in (member, admin, admin):
                    auth = {"Authorization": f"Bearer {tokens.login(who).access_token}"}
                    r = await c.post("/api/v1/license/evaluation", headers=auth)
                    out.append((r.status_code, r.json()))
                return out

        refused, started, again = asyncio.run(api())
        assert refused[0] == 403
        assert started[0] == 200 and started[1]["state"] in ("valid", "expiring")
        assert started[1]["license"]["evaluation"] is True
        assert again[0] == 409 and again[1]["code"] == "evaluation_unavailable"
        # Its one-off credits were granted with it.
        assert app.services.metering.meter.balance().balance == lic.once_micro
    finally:
        app.seal()


def test_the_cli_starts_the_evaluation(home_dir: Path, passphrase_file: Path) -> None:
    assert run_cli("init", "--home", home_dir, "--passphrase-file", passphrase_file).exit_code == 0
    args = ("license", "evaluate", "--home", home_dir, "--passphrase-file", passphrase_file)
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    assert "evaluation enclave-evaluation started" in first.output
    second = run_cli(*args)
    assert second.exit_code == 1 and "evaluation_unavailable" in second.output
