"""The admin pages in real Chromium: who may open which, accounts and groups, API keys, the
audit log (filter, export, verify), models and providers, license and credits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from appliance.identity.models import User
from tests.e2e.conftest import screenshot
from tests.ui.site import Site, sign_in, start_site

pytestmark = pytest.mark.browser
ADMIN_PAGES = (
    "/admin",
    "/admin/users",
    "/admin/keys",
    "/admin/audit",
    "/admin/models",
    "/admin/health",
)


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    key, _token = appliance.services.api_keys.create(people["bea"].id, "build server", ["chat"])
    return {"key": key.id}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("admin"), seed)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    # The machine may be shared with other test runs: allow slow steps.
    tab.set_default_timeout(60000)
    yield tab
    tab.close()


def refused(page: Any, site: Site, path: str) -> None:
    page.goto(f"{site.url}{path}")
    page.locator("#refused").wait_for()
    assert page.locator("main table, #user-list, #audit-table").count() == 0


def test_only_the_right_roles_get_in(page: Any, site: Site) -> None:
    page.context.clear_cookies()
    for path in (*ADMIN_PAGES, "/admin/credits"):
        page.goto(f"{site.url}{path}")
        page.wait_for_url("**/login")
    sign_in(page, site, "max")
    for path in (*ADMIN_PAGES, "/admin/credits"):
        refused(page, site, path)
    sign_in(page, site, "bea")
    refused(page, site, "/admin/users")
    sign_in(page, site, "aud")
    for path in ("/admin/users", "/admin/keys", "/admin/models", "/admin/credits", "/admin/health"):
        refused(page, site, path)
    page.goto(f"{site.url}/admin")
    main = page.locator(".q-page")
    main.get_by_role("link", name="Audit log").wait_for()
    assert main.get_by_role("link", name="Users and groups").count() == 0


def test_an_auditor_reads_and_verifies_the_audit_log(page: Any, site: Site) -> None:
    sign_in(page, site, "aud")
    page.goto(f"{site.url}/admin/audit")
    table = page.locator("#audit-table")
    table.get_by_text("login", exact=True).first.wait_for()
    page.click("#audit-verify")
    page.locator("#verify-result").filter(has_text="The chain is intact").wait_for()
    screenshot(page, "admin-audit")


def test_an_admin_manages_accounts_and_groups(page: Any, site: Site) -> None:
    sign_in(page, site, "ada")
    page.goto(f"{site.url}/admin/users")
    rows = page.locator("#user-list .user-row")
    rows.filter(has_text="bea").wait_for()
    page.get_by_label("New user name").fill("cleo")
    page.get_by_label("Initial password").fill("short")
    page.click("#create-user")
    page.locator("#admin-error").filter(has_text="12").wait_for()
    page.get_by_label("Initial password").fill("a long password for the new one 99")
    page.click("#create-user")
    rows.filter(has_text="cleo").wait_for()
    page.get_by_role("button", name="Disable cleo").click()
    rows.filter(has_text="cleo").filter(has_text="disabled").wait_for()
    assert page.get_by_role("button", name="Disable ada").count() == 0
    page.get_by_label("New group name").fill("Finance")
    page.click("#create-group")
    page.locator(".group-row").filter(has_text="Finance").wait_for()
    page.get_by_label("Add to Finance").click()
    page.get_by_role("option", name="max", exact=True).click()
    page.get_by_role("button", name="Add the chosen user to Finance").click()
    page.locator(".group-row").filter(has_text="members: max").wait_for()
    screenshot(page, "admin-users")
    page.goto(f"{site.url}/admin/audit")
    page.get_by_label("Action (e.g. user.create)").fill("user.create")
    page.click("#audit-filter")
    table = page.locator("#audit-table")
    table.get_by_text("user.create").first.wait_for()
    assert table.get_by_text("login", exact=True).count() == 0
    with page.expect_download() as download:
        page.click("#audit-export")
    csv = Path(download.value.path()).read_text()
    assert "user.create" in csv and ",login," not in csv
    page.get_by_label("From day (YYYY-MM-DD)").fill("yesterday")
    page.click("#audit-filter")
    page.get_by_role("alert").filter(has_text="a date like").wait_for()


def test_an_admin_revokes_an_api_key(page: Any, site: Site) -> None:
    sign_in(page, site, "ada")
    page.goto(f"{site.url}/admin/keys")
    row = page.locator(".key-row").filter(has_text="build server")
    row.filter(has_text="active").wait_for()
    page.get_by_role("button", name="Revoke key build server").click()
    row.filter(has_text="revoked").wait_for()


def test_everyone_manages_their_own_keys(page: Any, site: Site) -> None:
    page.context.clear_cookies()
    page.goto(f"{site.url}/account")
    page.wait_for_url("**/login")
    sign_in(page, site, "max")
    page.goto(f"{site.url}/account")
    page.locator("#own-usage").wait_for()
    page.get_by_label("Key name").fill("laptop script")
    page.click("#key-create")
    token = page.locator("#new-key-token")
    token.wait_for()
    assert token.inner_text().startswith("enc_")
    page.click("#new-key-done")
    row = page.locator(".own-key").filter(has_text="laptop script")
    row.filter(has_text="active").wait_for()
    screenshot(page, "account")
    page.get_by_role("button", name="Revoke laptop script").click()
    row.filter(has_text="revoked").wait_for()
    assert page.locator(".own-key").filter(has_text="build server").count() == 0


def test_models_providers_and_credits(page: Any, site: Site) -> None:
    sign_in(page, site, "ada")
    page.goto(f"{site.url}/admin/models")
    page.locator("#model-catalog").get_by_text("SmolLM2", exact=False).first.wait_for()
    assert "present" in page.locator("#model-catalog").inner_text()
    page.locator("#no-providers").wait_for()
    screenshot(page, "admin-models")
    page.goto(f"{site.url}/admin/credits")
    page.locator("#license-state").wait_for()
    page.locator("#credit-balance").filter(has_text="Available").wait_for()
    page.get_by_label("License file contents").fill("not a license")
    page.click("#license-import")
    page.get_by_role("alert").filter(has_text="license").wait_for()
    screenshot(page, "admin-credits")
    page.goto(f"{site.url}/admin/health")
    checks = page.locator("#health-checks")
    checks.get_by_text("sandbox:", exact=False).first.wait_for(timeout=60000)
    assert "schema" in checks.inner_text() and "migrations current" in checks.inner_text()
    page.locator("#health-summary").filter(has_text="checks pass").wait_for()
    screenshot(page, "admin-health")
