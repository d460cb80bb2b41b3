"""First run (passphrase, administrator), unseal and sign-in pages, through a simulated user."""

from __future__ import annotations

from nicegui import ui

from appliance import State
from appliance.agents.templates import list_templates
from tests.conftest import PASSPHRASE
from tests.ui.conftest import PASSWORD, Pages


async def test_first_run_refuses_differing_passphrases_then_creates_the_store(
    empty_pages: Pages,
) -> None:
    pages, user = empty_pages, empty_pages.user
    await user.open("/")  # nothing there yet: the seal gate sends the browser to set up
    await user.should_see("Set up Enclave")
    user.find("Admin passphrase").type(PASSPHRASE)
    user.find("Repeat passphrase").type(PASSPHRASE + "!")
    pages.by_id("setup-submit").click()
    await user.should_see("The two passphrases differ.")
    assert pages.appliance.state is State.UNINITIALISED

    user.find("Repeat passphrase").clear().type("too short")
    user.find("Admin passphrase").clear().type("too short")
    pages.by_id("setup-submit").click()
    await pages.wait(lambda: "12" in pages.error_text())
    assert pages.appliance.state is State.UNINITIALISED

    user.find("Admin passphrase").clear().type(PASSPHRASE)
    user.find("Repeat passphrase").clear().type(PASSPHRASE)
    pages.by_id("setup-submit").click()
    await pages.wait_for_path("/setup/admin")
    assert pages.appliance.state is State.UNSEALED
    await user.should_see("Create the administrator")

    # The administrator: the same check on the two passwords, then the real policy.
    user.find("Password").type(PASSWORD)
    user.find("Repeat password").type(PASSWORD + "x")
    pages.by_id("admin-submit").click()
    await user.should_see("The two passwords differ.")
    assert not pages.appliance.services.users.has_users()
    user.find("Password").clear().type(PASSWORD)
    user.find("Repeat password").clear().type(PASSWORD)
    pages.by_id("admin-submit").click()
    # Created and signed in (the cookie is in the browser): the wizard's license step opens.
    await pages.wait_for_path("/setup/license")
    await user.should_see("Step 3 of 6: License")
    (admin,) = pages.appliance.services.users.list_users()
    assert admin.username == "admin" and admin.role == "admin"


async def test_setup_is_closed_once_the_store_exists(pages: Pages) -> None:
    await pages.user.open("/setup")
    # On to the start page, and (not signed in) from there to the sign-in page.
    await pages.wait_for_path("/login")
    assert pages.user.back_history[-3:] == ["/setup", "/", "/login"]
    await pages.user.should_see("Sign in")


async def test_unseal_rejects_a_wrong_passphrase_and_opens_with_the_right_one(
    sealed_pages: Pages,
) -> None:
    pages, user = sealed_pages, sealed_pages.user
    await user.open("/unseal")
    await user.should_see("Enclave is sealed")
    user.find("Admin passphrase").type("not the passphrase at all")
    pages.by_id("unseal-submit").click()
    await pages.wait(lambda: pages.error_text() != "")
    assert pages.appliance.state is State.SEALED
    # The field is emptied for the next try.
    assert pages.field("Admin passphrase").value == ""

    user.find("Admin passphrase").type(PASSPHRASE)
    pages.by_id("unseal-submit").click()
    await pages.wait_for_path("/login")
    assert pages.appliance.state is State.UNSEALED


async def test_sign_in_refuses_wrong_credentials_and_signs_in(pages: Pages) -> None:
    user = pages.user
    await user.open("/login")
    user.find("User name").type("max")
    user.find("Password").type("wrong password 12345")
    pages.by_id("login-submit").click()
    await pages.wait(lambda: pages.error_text() != "")
    assert pages.error_text() == (
        "The username or password is not correct, or the key is not valid."
    )
    assert pages.field("Password").value == ""

    user.find("Password").type(PASSWORD)
    pages.by_id("login-submit").click()
    await pages.wait_for_path("/")
    await user.should_see("Signed in as max (member)")
    # A member's next steps: chat and knowledge, not the administrator's license step.
    await user.should_see("1. Chat with an agent")
    await user.should_not_see("Import the license (or keep evaluating)")

    pages.by_id("sign-out").click()
    await pages.wait_for_path("/login")
    await user.open("/")  # the session is gone: back to sign-in
    await pages.wait_for_path("/login")


async def test_pages_send_anonymous_visitors_to_sign_in(pages: Pages) -> None:
    for path in ("/chat", "/agents", "/knowledge", "/admin/users", "/account"):
        await pages.user.open(path)
        await pages.wait_for_path("/login")


async def test_the_wizard_license_step_then_first_agent_from_a_template(pages: Pages) -> None:
    user = pages.user
    licensing = pages.appliance.services.metering.license
    await pages.open_as("ada", "/setup/license")
    await user.should_see("Step 3 of 6: License")
    assert pages.text_of("license-state") == "No license is installed."
    if licensing.evaluation_offer() is not None:
        pages.by_id("start-evaluation").click()
        await pages.wait(lambda: licensing.status().license is not None)
    else:
        pages.by_id("license-skip").click()
    await pages.wait_for_path("/setup/model")
    await user.should_see("Step 4 of 6: Model")
    # The real check of the bundled model (file, format, memory, opens in llama.cpp).
    await pages.wait(lambda: _has_id(pages, "model-ready"), seconds=120)
    assert pages.element("model-continue").enabled
    pages.by_id("model-continue").click()
    await pages.wait_for_path("/setup/agent")
    await user.should_see("Step 5 of 6: First agent")
    template = list_templates()[0]
    user.find(kind=ui.button, content=f"Use {template['name']}").click()
    agents = pages.appliance.services.agents
    await pages.wait(lambda: len(agents.list_agents(pages.people["ada"])) == 1)
    (made,) = agents.list_agents(pages.people["ada"])
    await pages.wait_for_path(f"/chat?agent={made.id}")
    # The chat opens with the new agent chosen.
    await pages.wait(lambda: pages.element("agent-picker").value == made.id)


def _has_id(pages: Pages, dom_id: str) -> bool:
    return any(e.props.get("id") == dom_id for e in pages.user.current_layout.descendants())
