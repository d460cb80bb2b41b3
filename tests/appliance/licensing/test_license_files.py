"""Signed license and voucher files: any altered byte, wrong dates, machine or license → refused,
nothing changed; a good file is accepted once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from appliance.licensing.document import (
    LicensePayload,
    parse_license,
    parse_voucher,
    verify_signed,
)
from appliance.licensing.errors import (
    LicenseExpired,
    LicenseInvalid,
    LicenseNotYetValid,
    LicenseWrongMachine,
    VoucherAlreadyRedeemed,
    VoucherWrongLicense,
)
from appliance.licensing.keys import load_vendor_keys
from appliance.licensing.service import LicenseState
from tests.appliance.licensing.license_world import make_issuer


def _licensing(appliance: Appliance) -> Any:
    return appliance.services.metering.license


def _flips(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    for position in range(len(data)):
        for mask in (0x01, 0x20, 0xFF):
            changed = bytearray(data)
            changed[position] ^= mask
            yield position, mask, bytes(changed)


def test_every_flipped_byte_of_a_license_is_rejected(issuer: Any) -> None:
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    _, data = issuer.issue_license(customer="ACME", credits_once="100")
    assert parse_license(verify_signed(data, keys)).customer == "ACME"
    accepted = []
    for position, mask, changed in _flips(data):
        try:
            parse_license(verify_signed(changed, keys))
        except LicenseInvalid:
            continue
        accepted.append((position, mask))
    assert accepted == []


def test_every_flipped_byte_of_a_voucher_is_rejected(issuer: Any) -> None:
    keys = load_vendor_keys(issuer.directory / "vendor-ed25519.pem")
    _, data = issuer.issue_voucher("lic-1", "25")
    assert parse_voucher(verify_signed(data, keys)).micro == 25_000_000
    accepted = [
        (position, mask)
        for position, mask, changed in _flips(data)
        if _accepted_voucher(changed, keys)
    ]
    assert accepted == []


def _accepted_voucher(data: bytes, keys: Any) -> bool:
    try:
        parse_voucher(verify_signed(data, keys))
    except LicenseInvalid:
        return False
    return True


def test_an_altered_license_import_changes_nothing(appliance: Appliance, issuer: Any) -> None:
    _, data = issuer.issue_license(customer="ACME", credits_once="100")
    altered = data.replace(b'"credits_once":"100"', b'"credits_once":"900"')
    with pytest.raises(LicenseInvalid):
        _licensing(appliance).import_license(altered)
    assert _licensing(appliance).status().state is LicenseState.UNLICENSED
    assert appliance.services.metering.meter.balance().balance == 0


def test_a_file_signed_by_another_key_is_rejected(appliance: Appliance, tmp_path: Path) -> None:
    stranger = make_issuer(tmp_path / "stranger")
    _, data = stranger.issue_license(customer="ACME")
    with pytest.raises(LicenseInvalid, match="unknown vendor key"):
        _licensing(appliance).import_license(data)


def test_a_voucher_is_not_a_license(appliance: Appliance, issuer: Any) -> None:
    _, data = issuer.issue_voucher("lic-1", "5")
    with pytest.raises(LicenseInvalid, match="not a license"):
        _licensing(appliance).import_license(data)


def test_expired_license_is_rejected(appliance: Appliance, issuer: Any) -> None:
    now = datetime.now(UTC)
    _, data = issuer.issue_license(
        customer="ACME",
        not_before=now - timedelta(days=400),
        expires_at=now - timedelta(days=20),
        grace_days=14,
    )
    with pytest.raises(LicenseExpired):
        _licensing(appliance).import_license(data)
    assert _licensing(appliance).status().license is None


def test_license_in_grace_is_accepted_with_a_banner_state(
    appliance: Appliance, issuer: Any
) -> None:
    now = datetime.now(UTC)
    _, data = issuer.issue_license(
        customer="ACME",
        not_before=now - timedelta(days=400),
        expires_at=now - timedelta(days=2),
        grace_days=14,
    )
    _licensing(appliance).import_license(data)
    assert _licensing(appliance).status().state is LicenseState.GRACE


def test_not_yet_valid_license_is_rejected(appliance: Appliance, issuer: Any) -> None:
    _, data = issuer.issue_license(
        customer="ACME", not_before=datetime.now(UTC) + timedelta(days=3)
    )
    with pytest.raises(LicenseNotYetValid):
        _licensing(appliance).import_license(data)


def test_license_for_another_machine_is_rejected(appliance: Appliance, issuer: Any) -> None:
    _, data = issuer.issue_license(customer="ACME", machine_id="not-this-machine")
    with pytest.raises(LicenseWrongMachine, match="not-this-machine"):
        _licensing(appliance).import_license(data)
    machine = _licensing(appliance).machine_id
    _, bound = issuer.issue_license(customer="ACME", machine_id=machine)
    assert _licensing(appliance).import_license(bound).machine_id == machine


def test_voucher_for_another_license_is_rejected(appliance: Appliance, issuer: Any) -> None:
    lic, data = issuer.issue_license(customer="ACME")
    _licensing(appliance).import_license(data)
    _, voucher = issuer.issue_voucher("lic-someone-else", "50")
    with pytest.raises(VoucherWrongLicense, match="lic-someone-else"):
        _licensing(appliance).verify_voucher(voucher)
    _, expired = issuer.issue_voucher(lic.license_id, "50", days=-1)
    with pytest.raises(LicenseExpired):
        _licensing(appliance).verify_voucher(expired)
    assert appliance.services.metering.meter.balance().balance == 0


def test_voucher_replay_is_rejected_and_credits_once(appliance: Appliance, issuer: Any) -> None:
    lic, data = issuer.issue_license(customer="ACME", credits_once="10")
    _licensing(appliance).import_license(data)
    meter = appliance.services.metering.meter
    _, voucher = issuer.issue_voucher(lic.license_id, "50")
    meter.redeem(_licensing(appliance).verify_voucher(voucher))
    with pytest.raises(VoucherAlreadyRedeemed):
        meter.redeem(_licensing(appliance).verify_voucher(voucher))
    assert meter.balance().balance == 60_000_000
    assert meter.verify().ok


def test_reimporting_a_license_grants_its_credits_once(appliance: Appliance, issuer: Any) -> None:
    _, data = issuer.issue_license(customer="ACME", credits_once="10", credits_monthly="5")
    _licensing(appliance).import_license(data)
    _licensing(appliance).import_license(data)
    _licensing(appliance).check()
    assert appliance.services.metering.meter.balance().balance == 15_000_000


def test_payload_model_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="time zone"):
        LicensePayload(
            license_id="x1",
            customer="c",
            tier="t",
            seats=1,
            issued_at=datetime(2026, 1, 1),
            not_before=datetime(2026, 1, 1),
            expires_at=datetime(2027, 1, 1),
        )
