"""/agents/{id}, "Code-tool network": an administrator sets (and clears) the destinations an
agent's code tools may reach; a bad entry is explained and changes nothing; a builder sees the
list but cannot change it."""

from __future__ import annotations

from nicegui import ui

from tests.ui.conftest import Pages


async def test_an_admin_grants_and_revokes_code_tool_network(pages: Pages) -> None:
    agents, bea, ada = pages.appliance.services.agents, pages.people["bea"], pages.people["ada"]
    made = agents.create(bea, {"name": "Builder bot", "model": {"model": "m"}})
    await pages.open_as("ada", f"/agents/{made.id}")
    assert pages.text_of("tool-network") == (
        "The python and shell tools of this agent have no network."
    )

    pages.by_id("tool-network-input").type("localhost:80")
    pages.by_id("tool-network-save").click()
    await pages.wait(lambda: pages.text_of("tool-network-error") != "")
    assert agents.get(ada, made.id).tool_network_allowlist == ()

    pages.by_id("tool-network-input").clear().type("mirror.internal:443, 192.0.2.10:3128")
    pages.by_id("tool-network-save").click()
    await pages.wait(lambda: agents.get(ada, made.id).tool_network_allowlist != ())
    assert agents.get(ada, made.id).tool_network_allowlist == (
        "192.0.2.10:3128",
        "mirror.internal:443",
    )
    await pages.wait(
        lambda: pages.text_of("tool-network").endswith("192.0.2.10:3128, mirror.internal:443")
    )

    pages.by_id("tool-network-input").clear()
    pages.by_id("tool-network-save").click()
    await pages.wait(lambda: agents.get(ada, made.id).tool_network_allowlist == ())


async def test_a_builder_sees_the_list_but_cannot_change_it(pages: Pages) -> None:
    agents, bea, ada = pages.appliance.services.agents, pages.people["bea"], pages.people["ada"]
    made = agents.create(bea, {"name": "Mirror bot", "model": {"model": "m"}})
    agents.tool_network.set(ada, made.id, ["192.0.2.10:3128"])
    await pages.open_as("bea", f"/agents/{made.id}")
    assert pages.text_of("tool-network").endswith("192.0.2.10:3128")
    await pages.user.should_see("Only an administrator can change this.")
    await pages.user.should_not_see(kind=ui.button, content="Save network access")
