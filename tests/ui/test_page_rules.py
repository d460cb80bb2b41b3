"""Every UI page has an explicit access rule (deny by default), and the rules are enforced.

Pages render over NiceGUI's websocket, so what a page shows is checked in real Chromium
(tests/e2e); here the list of pages is read from NiceGUI's registry so a new page without a rule
fails, and the seal gate's answer for each page is checked over HTTP.
"""

from __future__ import annotations

from pathlib import Path

from nicegui import Client

from appliance import Appliance
from appliance.web.middleware import sealed_path_allowed
from tests.conftest import make_settings
from ui.account import add_account_pages
from ui.pages import add_lifecycle_pages

# "sealed": usable while sealed (first run, unseal). "public": unsealed, no sign-in needed
# (the sign-in and first-administrator pages). "signed-in": needs a browser session.
PAGE_RULES = {
    "/setup": "sealed",
    "/unseal": "sealed",
    "/setup/admin": "public",
    "/login": "public",
    "/": "signed-in",
}


def registered_pages() -> set[str]:
    add_lifecycle_pages(Appliance(make_settings(Path("/nonexistent"))))
    add_account_pages(Appliance(make_settings(Path("/nonexistent"))))
    return set(Client.page_routes.values())


def test_every_page_has_a_rule() -> None:
    pages = registered_pages()
    assert pages - set(PAGE_RULES) == set(), "pages without an access rule"
    assert set(PAGE_RULES) - pages == set(), "rules for pages that no longer exist"


def test_only_the_sealed_pages_pass_the_seal_gate() -> None:
    for page, rule in PAGE_RULES.items():
        assert sealed_path_allowed(page) is (rule == "sealed"), page
