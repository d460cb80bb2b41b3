"""The notification bell in real Chromium against a real `enclave run`: a member whose soft
daily budget was reached by real metered spending sees that notice in the header, marks it
read, and never sees the administrators' notices (here: the low-balance one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance import Appliance
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from tests.appliance.licensing.license_world import licensed_settings, make_issuer
from tests.conftest import PASSPHRASE
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Server, fast_env
from tests.ui.site import PASSWORD, PEOPLE, Site, sign_in

pytestmark = pytest.mark.browser


def _spend(appliance: Appliance, user: User, tokens: int) -> None:
    meter = appliance.services.metering.meter
    hold = meter.reserve(
        principal=f"user:{user.id}",
        provider="local",
        model="smol",
        prompt_tokens=tokens,
        max_tokens=0,
    )
    meter.settle(hold.id, tokens, 0)


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    """A licensed appliance (10 credits, 1 credit per 1k tokens), max over his soft daily
    budget, and the balance under 20 % (an admins' notice)."""
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")
    metering.budgets.create("user", people["max"].id, "day", "soft", "0.5")
    _spend(appliance, people["max"], 1000)  # 1 of 0.5: reached
    _spend(appliance, people["ada"], 7500)  # 1.5 of 10 left: under 20 %
    notices = metering.notifications
    mine = notices.list_for(people["max"].id, False)
    admins_only = [
        n["message"] for n in notices.list_for(people["ada"].id, True) if n["kind"] == "low_balance"
    ]
    assert [n["kind"] for n in mine] == ["budget_reached"] and admins_only
    return {"mine": mine[0]["message"], "admins_only": admins_only}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("notices")
    issuer = make_issuer(root / "vendor")
    home = root / "home"
    appliance = Appliance(licensed_settings(home, issuer))
    appliance.initialise(PASSPHRASE)
    _, license_data = issuer.issue_license(customer="ACME", credits_once="10")
    appliance.services.metering.license.import_license(license_data)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    people = {name: users.create_user(name, PASSWORD, role) for name, role in PEOPLE.items()}
    seeded = seed(appliance, people)
    appliance.seal()
    passphrase = root / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    passphrase.chmod(0o600)
    env = fast_env(
        ENCLAVE_RATE_LIMIT_AUTH_PER_MINUTE="1000",
        ENCLAVE_LICENSE_PUBLIC_KEYS=str(issuer.directory / "vendor-ed25519.pem"),
    )
    server = Server(home, env, ["--passphrase-file", str(passphrase)])
    yield Site(server, people, seeded)
    server.stop()


@pytest.fixture(scope="module")
def page(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        tab = browser.new_page(viewport={"width": 1280, "height": 720})
        tab.set_default_timeout(60000)  # the machine may be shared with other test runs
        yield tab
        browser.close()


def test_a_member_sees_their_budget_notice_and_marks_it_read(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    count = page.locator("#notice-count")
    count.filter(has_text="1").wait_for()
    page.click("#notice-bell")
    menu = page.locator(".q-menu")
    menu.get_by_text(site.seeded["mine"], exact=True).wait_for()
    for message in site.seeded["admins_only"]:
        assert page.get_by_text(message).count() == 0
    menu.get_by_role("button", name="Mark read").click()
    count.wait_for(state="hidden")
    unread = page.request.get(f"{site.url}/api/v1/notifications?unread=true")
    assert unread.status == 200 and unread.json() == []
    # Read, not gone: still listed, without a button, after a reload too.
    page.reload()
    page.click("#notice-bell")
    page.locator(".q-menu").get_by_text(site.seeded["mine"], exact=True).wait_for()
    assert page.locator(".q-menu").get_by_role("button", name="Mark read").count() == 0
    assert page.locator("#notice-count").is_hidden()


def test_an_admin_sees_the_low_balance_notice(page: Any, site: Site) -> None:
    sign_in(page, site, "ada")
    page.click("#notice-bell")
    menu = page.locator(".q-menu")
    for message in site.seeded["admins_only"]:
        menu.get_by_text(message, exact=True).wait_for()
