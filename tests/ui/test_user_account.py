"""/account through a simulated user: own API keys (token shown once, revoke), language choice."""

from __future__ import annotations

from nicegui import ui

from appliance.identity.api_keys import TOKEN_PREFIX
from tests.ui.conftest import Pages


async def test_a_member_creates_and_revokes_an_own_api_key(pages: Pages) -> None:
    user = pages.user
    await pages.open_as("max", "/account")
    await user.should_see("Signed in as max (member).")
    await user.should_see("You have no API keys.")
    await user.should_see("You have not used any credits in the last 30 days.")

    pages.by_id("key-create").click()  # no name: the service's message, nothing created
    await pages.wait(lambda: pages.error_text().startswith("A key name is 1"))
    max_id = pages.people["max"].id
    assert pages.appliance.services.api_keys.list_for_user(max_id) == []

    user.find("Key name").type("laptop script")
    pages.by_id("key-create").click()
    await pages.wait(lambda: any(e.props.get("id") == "new-key-token" for e in _all(pages)))
    token = pages.text_of("new-key-token")
    (key,) = pages.appliance.services.api_keys.list_for_user(max_id)
    assert key.name == "laptop script" and key.scope_list == ["chat"]
    assert token.startswith(f"{TOKEN_PREFIX}{key.id}_")  # the real token, shown once
    pages.by_id("new-key-done").click()
    await user.should_see("laptop script")
    await user.should_see("active")

    pages.user.find(kind=ui.button, content="Revoke").click()
    await user.should_see("revoked")
    (key,) = pages.appliance.services.api_keys.list_for_user(max_id)
    assert key.revoked_at is not None
    # The token is never on the page again.
    await user.open("/account")
    assert not [e for e in _all(pages) if token in str(getattr(e, "text", ""))]


async def test_choosing_german_redraws_the_pages_in_german_and_back(pages: Pages) -> None:
    user = pages.user
    await pages.open_as("bea", "/account")
    await user.should_see("Your account")
    picker = pages.element("language-select")
    assert isinstance(picker, ui.select) and picker.value == "browser"

    with user:
        picker.value = "de"  # the person picks "Deutsch"
    await user.should_see("Ihr Konto")
    assert pages.element("language-select").value == "de"
    assert user.http_client.cookies.get("enclave_lang") == "de"
    # Every page now speaks German, e.g. the chat page and the navigation.
    await user.open("/chat")
    await user.should_see("Neue Unterhaltung")
    await user.should_see("Wissen")

    await user.open("/account")
    with user:
        pages.element("language-select").value = "browser"  # back to the browser's choice
    await user.should_see("Your account")
    assert user.http_client.cookies.get("enclave_lang") is None


async def test_the_browser_language_decides_without_a_choice(pages: Pages) -> None:
    pages.user.http_client.headers["Accept-Language"] = "fr-CH, de;q=0.8, en;q=0.5"
    await pages.open_as("aud", "/account")
    await pages.user.should_see("Ihr Konto")
    # The auditor's navigation: admin (audit) and account, no chat, no agents.
    await pages.user.should_see("Verwaltung")
    await pages.user.should_not_see("Agenten")


def _all(pages: Pages) -> list[ui.element]:
    return list(pages.user.current_layout.descendants())
