"""Every UI page has an explicit access rule (deny by default), and the rules are enforced.

Pages render over NiceGUI's websocket, so what a page shows is checked in real Chromium
(tests/e2e); here the list of pages is read from NiceGUI's registry so a new page without a rule
fails, the seal gate's answer for each page is checked over HTTP, and each page's source is
checked to ask :func:`ui.access.viewer` for exactly the roles its rule names.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from nicegui import Client

from appliance import Appliance
from appliance.web.middleware import sealed_path_allowed
from tests.conftest import make_settings
from ui import add_pages
from ui.access import ADMIN_ROLES, ALL_ROLES, BUILDER_ROLES, CHAT_ROLES, OVERSIGHT_ROLES

# "sealed": usable while sealed (first run, unseal). "public": unsealed, no sign-in needed
# (the sign-in and first-administrator pages). "signed-in": any signed-in role. Otherwise the
# set of roles that may open the page; everyone else is refused.
PAGE_RULES: dict[str, str | frozenset[str]] = {
    "/setup": "sealed",
    "/unseal": "sealed",
    "/setup/admin": "public",
    "/setup/license": ADMIN_ROLES,
    "/setup/model": ADMIN_ROLES,
    "/setup/agent": ADMIN_ROLES,
    "/login": "public",
    "/": "signed-in",
    "/chat": CHAT_ROLES,
    "/chat/{conversation_id}": CHAT_ROLES,
    "/agents": BUILDER_ROLES,
    "/agents/new": BUILDER_ROLES,
    "/agents/{agent_id}": BUILDER_ROLES,
    "/knowledge": CHAT_ROLES,
    "/knowledge/{kb_id}": CHAT_ROLES,
    "/account": ALL_ROLES,
    "/admin": OVERSIGHT_ROLES,
    "/admin/users": ADMIN_ROLES,
    "/admin/keys": ADMIN_ROLES,
    "/admin/audit": OVERSIGHT_ROLES,
    "/admin/models": ADMIN_ROLES,
    "/admin/credits": ADMIN_ROLES,
    "/admin/health": ADMIN_ROLES,
}
ROLE_SETS = {
    "CHAT_ROLES": CHAT_ROLES,
    "BUILDER_ROLES": BUILDER_ROLES,
    "ADMIN_ROLES": ADMIN_ROLES,
    "OVERSIGHT_ROLES": OVERSIGHT_ROLES,
    "ALL_ROLES": ALL_ROLES,
}


def registered_pages() -> dict[str, Any]:
    add_pages(Appliance(make_settings(Path("/nonexistent"))))
    return {path: fn for fn, path in Client.page_routes.items()}


def test_every_page_has_a_rule() -> None:
    pages = set(registered_pages())
    assert pages - set(PAGE_RULES) == set(), "pages without an access rule"
    assert set(PAGE_RULES) - pages == set(), "rules for pages that no longer exist"


def test_only_the_sealed_pages_pass_the_seal_gate() -> None:
    for page, rule in PAGE_RULES.items():
        assert sealed_path_allowed(page) is (rule == "sealed"), page


def test_each_guarded_page_asks_for_its_roles() -> None:
    pages = registered_pages()
    for path, rule in PAGE_RULES.items():
        if isinstance(rule, str):
            continue
        source = inspect.getsource(pages[path])
        names = [name for name, roles in ROLE_SETS.items() if roles == rule]
        assert any(name in source for name in names) or "open_chat" in source, path


def test_role_sets_deny_by_default() -> None:
    assert "auditor" not in CHAT_ROLES | BUILDER_ROLES | ADMIN_ROLES
    assert "member" not in BUILDER_ROLES | OVERSIGHT_ROLES
    assert {"admin"} == ADMIN_ROLES
