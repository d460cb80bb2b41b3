"""What an admin hands the appliance as a license or voucher: pasted text that lost its final
newline or has CRLF endings is the same file; hostile input (deep nesting, huge files) is a
typed refusal, never a 500; a license with fewer seats than active users is imported with a
warning saying how many users to disable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance import Appliance
from appliance.identity.models import Role
from appliance.licensing.document import MAX_FILE_BYTES
from appliance.web import create_app
from tests.appliance.licensing.license_world import licensed_settings, open_appliance
from tests.conftest import run_cli

DEEP = "[" * 30000


@dataclass
class Api:
    client: httpx.AsyncClient
    appliance: Appliance
    admin: dict[str, str]

    async def import_license(self, text: str) -> httpx.Response:
        return await self.client.post("/api/v1/license", json={"license": text}, headers=self.admin)


@pytest.fixture
async def api(home_dir: Path, issuer: Any) -> AsyncIterator[Api]:
    appliance = open_appliance(
        licensed_settings(
            home_dir, issuer, rate_limit_api_per_minute=100000, rate_limit_auth_per_minute=100000
        )
    )
    users = appliance.services.users
    admin = users.create_user("admin-user", "api password for tests", Role.ADMIN)
    token = appliance.services.tokens.login(admin).access_token
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield Api(client, appliance, {"Authorization": f"Bearer {token}"})
    appliance.seal()


@pytest.mark.parametrize(
    "pasted",
    [
        pytest.param(lambda text: text.rstrip("\n"), id="no-final-newline"),
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="crlf"),
    ],
)
async def test_a_pasted_license_with_other_line_endings_imports(
    api: Api, issuer: Any, pasted: Any
) -> None:
    lic, data = issuer.issue_license(customer="ACME", credits_once="7")
    answer = await api.import_license(pasted(data.decode()))
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == lic.license_id
    _, voucher = issuer.issue_voucher(lic.license_id, "5")
    redeemed = await api.client.post(
        "/api/v1/credits/vouchers",
        json={"voucher": voucher.decode().rstrip("\n")},
        headers=api.admin,
    )
    assert redeemed.status_code == 200, redeemed.text
    assert api.appliance.services.metering.meter.balance().balance == 12_000_000
    # The stored file re-verifies at every check (it is kept in canonical form).
    assert api.appliance.services.metering.license.check().license == lic
    # A changed byte is still refused, whatever its line ending.
    altered = pasted(data.decode().replace("ACME", "ACNE"))
    refused = await api.import_license(altered)
    assert refused.status_code == 422 and refused.json()["code"] == "license_invalid"


async def test_deeply_nested_json_is_a_typed_refusal(api: Api, issuer: Any) -> None:
    nested_payload = '{"key_id":"k","payload":' + "[" * 3000 + "]" * 3000 + ',"signature":"s"}'
    for text in (DEEP, DEEP + "1" + "]" * 30000, nested_payload):
        answer = await api.import_license(text)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "license_invalid"
    lic, data = issuer.issue_license(customer="ACME")
    assert (await api.import_license(data.decode())).status_code == 200
    voucher = await api.client.post(
        "/api/v1/credits/vouchers", json={"voucher": DEEP}, headers=api.admin
    )
    assert voucher.status_code == 422 and voucher.json()["code"] == "license_invalid"
    assert api.appliance.services.metering.license.status().license == lic


async def test_an_oversized_license_body_says_too_large(api: Api) -> None:
    answer = await api.import_license("x" * (MAX_FILE_BYTES + 1))
    assert answer.status_code == 413, answer.text
    body = answer.json()
    assert body["code"] == "license_too_large"
    assert "too large" in body["detail"] and f"{MAX_FILE_BYTES:,}" in body["detail"]
    assert api.appliance.services.metering.license.status().license is None
    voucher = await api.client.post(
        "/api/v1/credits/vouchers", json={"voucher": "x" * (MAX_FILE_BYTES + 1)}, headers=api.admin
    )
    assert voucher.status_code == 413 and voucher.json()["code"] == "license_too_large"


async def test_fewer_seats_than_active_users_imports_with_a_warning(api: Api, issuer: Any) -> None:
    users = api.appliance.services.users
    for name in ("member-one", "member-two"):
        users.create_user(name, "api password for tests", Role.MEMBER)
    lic, data = issuer.issue_license(customer="ACME", seats=2)
    answer = await api.import_license(data.decode())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["imported"] == lic.license_id
    assert (body["seats"], body["seats_used"], body["over_seats"]) == (2, 3, True)
    assert "disable 1 user" in body["seats_message"]
    status = await api.client.get("/api/v1/license/status", headers=api.admin)
    assert status.json()["over_seats"] is True and status.json()["seats_used"] == 3
    assert len(users.list_users()) == 3  # nothing was disabled or lost


def test_cli_refuses_huge_files_quickly_and_bad_json_with_a_typed_error(
    home_dir: Path, issuer: Any, passphrase_file: Path, cli_env: None, tmp_path: Path
) -> None:
    app = open_appliance(licensed_settings(home_dir, issuer))
    app.seal()
    huge = tmp_path / "huge.license"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB, sparse
    nested = tmp_path / "nested.license"
    nested.write_text(DEEP)
    for path, code in (
        (huge, "license_too_large"),
        (Path("/dev/zero"), "license_too_large"),
        (nested, "license_invalid"),
    ):
        began = time.monotonic()
        refused = run_cli(
            "license", "import", "--home", home_dir, "--passphrase-file", passphrase_file, path
        )
        assert refused.exit_code == 1, refused.output
        assert code in refused.output
        assert time.monotonic() - began < 10


def test_cli_warns_when_a_license_has_fewer_seats_than_active_users(
    home_dir: Path,
    issuer: Any,
    passphrase_file: Path,
    cli_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENCLAVE_LICENSE_PUBLIC_KEYS", str(issuer.directory / "vendor-ed25519.pem"))
    app = open_appliance(licensed_settings(home_dir, issuer))
    for name in ("member-one", "member-two", "member-three"):
        app.services.users.create_user(name, "a long enough password", Role.MEMBER)
    app.seal()
    lic, data = issuer.issue_license(customer="ACME", seats=1)
    path = tmp_path / "acme.license"
    path.write_bytes(data.replace(b"\n", b"\r\n"))
    imported = run_cli(
        "license", "import", "--home", home_dir, "--passphrase-file", passphrase_file, path
    )
    assert imported.exit_code == 0, imported.output
    assert f"license {lic.license_id} imported" in imported.output
    assert "warning:" in imported.output and "disable 2 users" in imported.output
