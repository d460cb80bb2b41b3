"""The admin pages through a simulated user: who may open them, users and groups, API keys,
the audit log, license and credits, models, system health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui import ui

from appliance import Appliance
from appliance.identity.passwords import verify_password
from tests.appliance.licensing.license_world import licensed_settings, make_issuer
from tests.conftest import PASSPHRASE
from tests.ui.conftest import Pages, _people, simulate

ADMIN_ONLY = (
    "/admin/users",
    "/admin/keys",
    "/admin/models",
    "/admin/credits",
    "/admin/health",
    "/setup/license",
)


@pytest.mark.parametrize("name", ["max", "bea"])
async def test_members_and_builders_cannot_open_admin_pages(pages: Pages, name: str) -> None:
    await pages.sign_in(name)
    role = {"max": "member", "bea": "builder"}[name]
    for path in (*ADMIN_ONLY, "/admin", "/admin/audit"):
        await pages.user.open(path)
        await pages.user.should_see(f"you are signed in as {name} ({role})")
        await pages.user.should_see("Not available to you")
        # Nothing of the page itself is drawn, and the navigation has no Admin link.
        await pages.user.should_not_see(kind=ui.table)
        await pages.user.should_not_see(kind=ui.button, content="Create account")
        await pages.user.should_not_see(kind=ui.link, content="Admin")


async def test_an_auditor_sees_the_audit_log_only(pages: Pages) -> None:
    await pages.open_as("aud", "/admin")
    await pages.user.should_see("Audit log")
    await pages.user.should_not_see(kind=ui.link, content="Users and groups")
    await pages.user.open("/admin/users")
    await pages.user.should_see("The Users and groups page is for admin accounts")
    await pages.user.open("/admin/audit")
    await pages.user.should_see(kind=ui.table)


async def test_an_admin_creates_a_user_changes_the_role_and_disables_them(pages: Pages) -> None:
    user, services = pages.user, pages.appliance.services
    await pages.open_as("ada", "/admin/users")
    await pages.wait(lambda: _has_text(pages, "ada"))  # the accounts load after the page

    # The password policy speaks through the page; nothing is created.
    user.find("New user name").type("carla")
    user.find("Initial password").type("short")
    pages.by_id("create-user").click()
    await pages.wait(lambda: pages.error_text() != "")
    assert "12" in pages.error_text()
    assert "carla" not in {u.username for u in services.users.list_users()}

    user.find("Initial password").clear().type("lemon tree harbour 24")
    pages.by_id("create-user").click()
    await pages.wait(lambda: user.notify.contains("Account created."))  # Argon2id takes a while
    carla = next(u for u in services.users.list_users() if u.username == "carla")
    assert carla.role == "member"
    assert verify_password(carla.password_hash, "lemon tree harbour 24")
    await pages.wait(lambda: _has_text(pages, "carla", kind=ui.label))

    # Promote: the role select of carla's row.
    with user:
        pages.field("Role of carla").value = "builder"
    await pages.wait(lambda: services.users.get_user(carla.id).role == "builder")

    pages.labelled("Disable carla").click()
    await pages.wait(lambda: services.users.get_user(carla.id).disabled)
    # Every change is audited with the administrator as actor.
    actions = [e["action"] for e in services.audit.query(actor=f"user:{pages.people['ada'].id}")]
    assert actions.count("user.update") == 2 and "user.create" in actions

    # An administrator cannot change their own role (no lock-out).
    assert not pages.field("Role of ada").enabled


async def test_an_admin_creates_a_group_and_adds_a_member(pages: Pages) -> None:
    user, services = pages.user, pages.appliance.services
    await pages.open_as("ada", "/admin/users")
    await user.should_see("No groups yet.")
    pages.by_id("create-group").click()  # an empty name is refused
    await pages.wait(lambda: pages.error_text() != "")
    assert services.groups.list_groups() == []

    user.find("New group name").type("finance")
    pages.by_id("create-group").click()
    await user.should_see("members: none")
    (group,) = services.groups.list_groups()
    assert group.name == "finance"

    add = user.find(kind=ui.button, content="Add")
    add.click()  # nobody chosen yet
    await user.should_see("Choose the user to add first.")
    with user:
        pages.field("Add to finance").value = pages.people["max"].id
    user.find(kind=ui.button, content="Add").click()
    await user.should_see("members: max")
    assert [u.username for u in services.groups.list_members(group.id)] == ["max"]


async def test_an_admin_revokes_someones_api_key(pages: Pages) -> None:
    services = pages.appliance.services
    key, _token = services.api_keys.create(pages.people["bea"].id, "bea's build job", ["chat"])
    await pages.open_as("ada", "/admin/keys")
    await pages.user.should_see("bea's build job")
    await pages.user.should_see("owner bea")
    pages.user.find(kind=ui.button, content="Revoke").click()
    await pages.wait(lambda: services.api_keys.get(key.id).revoked_at is not None)
    await pages.user.should_see("revoked")
    await pages.user.should_not_see(kind=ui.button, content="Revoke")


async def test_the_audit_log_filters_verifies_and_explains_bad_dates(pages: Pages) -> None:
    user = pages.user
    await pages.open_as("aud", "/admin/audit")
    table = pages.element("audit-table")
    await pages.wait(lambda: len(table.rows) > 0)
    assert {r["action"] for r in table.rows} >= {"init", "login"}

    user.find("Action (e.g. user.create)").type("login")
    pages.by_id("audit-filter").click()
    await pages.wait(lambda: {r["action"] for r in table.rows} == {"login"})
    user.find("Action (e.g. user.create)").clear().type("no.such.action")
    pages.by_id("audit-filter").click()
    await user.should_see("No entries match.")

    user.find("From day (YYYY-MM-DD)").type("31.01.2026")
    pages.by_id("audit-filter").click()
    await pages.wait(lambda: "From day is a date like 2026-01-31." in pages.error_text())

    pages.by_id("audit-verify").click()
    await pages.wait(lambda: pages.text_of("verify-result").startswith("The chain is intact"))


async def test_license_and_credits_page_refuses_a_bad_license(pages: Pages) -> None:
    await pages.open_as("ada", "/admin/credits")
    await pages.user.should_see("License and credits")
    assert pages.text_of("credit-balance").startswith("Available:")
    before = pages.appliance.services.metering.license.status().state
    pages.user.find("License file contents").type('{"not": "a license"}')
    pages.by_id("license-import").click()
    await pages.wait(lambda: pages.error_text() != "")
    assert pages.appliance.services.metering.license.status().state == before


async def test_models_and_health_pages_show_the_appliance(pages: Pages) -> None:
    await pages.open_as("ada", "/admin/models")
    catalog = pages.element("model-catalog")
    assert any("(default)" in row["name"] for row in catalog.rows)
    await pages.user.should_see("No MCP servers are registered. Register them with the API or CLI.")

    await pages.user.open("/admin/health")
    await pages.wait(lambda: pages.text_of("health-summary") != "Checking…", seconds=60)
    checks = pages.element("health-checks")
    assert checks.rows and all(r["status"] in ("ok", "warning", "FAILING") for r in checks.rows)


def _all(pages: Pages, kind: type) -> list:
    return [e for e in pages.user.current_layout.descendants() if isinstance(e, kind)]


def _has_text(pages: Pages, text: str, kind: type = ui.label) -> bool:
    return any(getattr(e, "text", None) == text for e in _all(pages, kind))


async def test_the_credits_page_warns_when_more_users_are_active_than_seats(
    fresh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer: Any = make_issuer(tmp_path / "vendor")
    appliance = Appliance(licensed_settings(fresh_home, issuer))
    appliance.unseal(PASSPHRASE)
    _, data = issuer.issue_license(customer="ACME", seats=2, credits_once="10")
    appliance.services.metering.license.import_license(data)  # a downgrade: four are active
    async with simulate(appliance, monkeypatch) as user:
        pages = Pages(user, appliance, _people(appliance))
        await pages.open_as("ada", "/admin/credits")
        await user.should_see("License and credits")
        warning = pages.text_of("license-over-seats")
        assert warning.startswith("4 users are active but the license has 2 seats: disable 2")
