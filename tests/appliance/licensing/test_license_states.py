"""License states over time, the clock high-water mark, seats, read-only mode and the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance import Appliance
from appliance.credits.notifications import NotificationService
from appliance.identity.models import Role
from appliance.licensing.errors import SeatsExceeded
from appliance.licensing.keys import load_vendor_keys
from appliance.licensing.service import LicenseService, LicenseState
from appliance.web import create_app
from engine.hooks import HookDenied, ModelCall
from tests.appliance.licensing.license_world import licensed_settings, open_appliance
from tests.conftest import run_cli


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _service(appliance: Appliance, issuer: Any, clock: Clock) -> LicenseService:
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    machine = appliance.services.metering.license.machine_id
    return LicenseService(appliance.db, keys, machine, clock=clock, monotonic=lambda: 0.0)


def test_states_run_from_valid_to_read_only_and_a_new_license_restores(
    appliance: Appliance, issuer: Any
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(start)
    service = _service(appliance, issuer, clock)
    _, data = issuer.issue_license(customer="ACME", not_before=start, days=60, grace_days=10)
    service.import_license(data)
    seen = []
    for day in (0, 31, 53, 59, 61, 69, 71):
        clock.now = start + timedelta(days=day, hours=1)
        seen.append(service.check().state)
    assert seen == [
        LicenseState.VALID,
        LicenseState.EXPIRING,
        LicenseState.EXPIRING,
        LicenseState.EXPIRING,
        LicenseState.GRACE,
        LicenseState.GRACE,
        LicenseState.READ_ONLY,
    ]
    notices = NotificationService(appliance.db).list_for(1, is_admin=True)
    kinds = sorted(n["kind"] for n in notices)
    assert kinds == [
        "license_expiring",
        "license_expiring",
        "license_expiring",
        "license_grace",
        "license_read_only",
    ]
    _, renewal = issuer.issue_license(
        customer="ACME", not_before=clock.now - timedelta(days=1), days=365
    )
    service.import_license(renewal)
    assert service.status().state is LicenseState.VALID


def test_clock_rollback_is_detected_and_cannot_extend_a_license(
    appliance: Appliance, issuer: Any
) -> None:
    start = datetime.now(UTC)
    clock = Clock(start)
    service = _service(appliance, issuer, clock)
    _, data = issuer.issue_license(customer="ACME", not_before=start - timedelta(days=1), days=42)
    service.import_license(data)
    clock.now = start + timedelta(days=39, hours=23)
    assert service.check().state is LicenseState.EXPIRING
    clock.now = start - timedelta(days=5)  # someone sets the clock back
    status = service.check()
    assert status.rollback_detected_at is not None
    assert status.now >= start + timedelta(days=39, hours=23)
    assert status.state is LicenseState.EXPIRING
    kinds = [n["kind"] for n in NotificationService(appliance.db).list_for(1, is_admin=True)]
    assert "clock_rollback" in kinds


def test_seats_are_enforced_with_a_clear_error(appliance: Appliance, issuer: Any) -> None:
    users = appliance.services.users
    admin = users.create_user("admin-one", "a long enough password", "admin")
    member = users.create_user("member-one", "a long enough password", "member")
    _, data = issuer.issue_license(customer="ACME", seats=2)
    appliance.services.metering.license.import_license(data)
    with pytest.raises(SeatsExceeded, match="All 2 seats"):
        users.create_user("member-two", "a long enough password", "member")
    assert users.find_user("member-two") is None
    users.set_disabled(member.id, True)
    third = users.create_user("member-two", "a long enough password", "member")
    with pytest.raises(SeatsExceeded):
        users.set_disabled(member.id, False)
    assert users.get_user(member.id).disabled
    assert {u.id for u in users.list_users() if not u.disabled} == {admin.id, third.id}


def test_read_only_blocks_the_hook_but_reads_and_exports_work(
    appliance: Appliance, issuer: Any
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    expiry = now + timedelta(seconds=2)
    lic, data = issuer.issue_license(
        customer="ACME",
        not_before=now - timedelta(days=30),
        expires_at=expiry,
        grace_days=0,
        credits_once="10",
    )
    metering = appliance.services.metering
    metering.license.import_license(data)
    admin = appliance.services.users.create_user("admin-one", "a long enough password", "admin")
    call = ModelCall("run-1", 1, f"user:{admin.id}", None, "local", "smol", 10, 10)
    hook = metering.hook()
    reservation = asyncio.run(hook.before_model_call(call))
    assert reservation is not None
    asyncio.run(hook.after_model_call(call, None, reservation, None))
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1.1)
    assert metering.license.status().state is LicenseState.READ_ONLY
    with pytest.raises(HookDenied) as denied:
        asyncio.run(hook.before_model_call(call))
    assert denied.value.reason_code == "license_read_only"
    assert denied.value.http_status == 403
    # Reads and exports still work.
    exported = "".join(appliance.services.audit.export("json"))
    assert "license.import" in exported or json.loads(exported) is not None
    assert metering.meter.entries()
    assert metering.meter.verify().ok
    token = appliance.services.tokens.login(admin).access_token
    headers = {"Authorization": f"Bearer {token}"}

    async def api() -> tuple[int, int, str]:
        transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            balance = await client.get("/api/v1/credits/balance", headers=headers)
            export = await client.get("/api/v1/audit/export?format=csv", headers=headers)
            return balance.status_code, export.status_code, balance.json()["license_state"]

    assert asyncio.run(api()) == (200, 200, "read_only")
    assert lic.license_id


def test_cli_imports_and_shows_the_license(
    home_dir: Path,
    issuer: Any,
    passphrase_file: Path,
    cli_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENCLAVE_LICENSE_PUBLIC_KEYS", str(issuer.directory / "vendor-ed25519.pem"))
    app = open_appliance(licensed_settings(home_dir, issuer))
    app.seal()
    lic, data = issuer.issue_license(customer="ACME", seats=5, credits_once="3")
    path = tmp_path / "acme.license"
    path.write_bytes(data)
    imported = run_cli(
        "license", "import", "--home", home_dir, "--passphrase-file", passphrase_file, path
    )
    assert imported.exit_code == 0, imported.output
    assert f"license {lic.license_id} imported" in imported.output
    shown = run_cli("license", "show", "--home", home_dir, "--passphrase-file", passphrase_file)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["state"] == "valid" and body["license"]["seats"] == 5
    assert body["machine_id"]
    path.write_bytes(data.replace(b"ACME", b"ACNE"))
    refused = run_cli(
        "license", "import", "--home", home_dir, "--passphrase-file", passphrase_file, path
    )
    assert refused.exit_code == 1
    assert "license_invalid" in refused.output


def test_the_shipped_vendor_key_loads() -> None:
    keys = load_vendor_keys()
    assert len(keys) >= 1 and all(len(k) == 16 for k in keys)


def test_member_sees_license_status_not_details(appliance: Appliance, issuer: Any) -> None:
    member = appliance.services.users.create_user("member-one", "a long enough password", "member")
    token = appliance.services.tokens.login(member).access_token
    headers = {"Authorization": f"Bearer {token}"}

    async def api() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            status = await client.get("/api/v1/license/status", headers=headers)
            details = await client.get("/api/v1/license", headers=headers)
            return status.status_code, details.status_code

    assert asyncio.run(api()) == (200, 403)
    assert Role.MEMBER.value == member.role
