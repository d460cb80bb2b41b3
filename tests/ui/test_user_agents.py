"""/agents, /agents/new and /agents/{id} through a simulated user: the builder form, versions
with compare and rollback, sharing, import and templates."""

from __future__ import annotations

import json

from nicegui import ui

from appliance.agents.templates import list_templates
from tests.ui.conftest import Pages


async def test_a_member_cannot_build_agents(pages: Pages) -> None:
    await pages.open_as("max", "/agents/new")
    await pages.user.should_see("Not available to you")
    await pages.user.should_not_see(kind=ui.button, content="Create agent")
    assert pages.appliance.services.agents.list_agents(pages.people["max"]) == []


async def test_a_builder_creates_edits_compares_and_rolls_back_an_agent(pages: Pages) -> None:
    user, agents = pages.user, pages.appliance.services.agents
    bea = pages.people["bea"]
    await pages.open_as("bea", "/agents")
    await user.should_see("No agents yet. Start from a template below or create a new one.")
    pages.by_id("new-agent").click()
    await pages.wait_for_path("/agents/new")

    pages.by_id("agent-create").click()  # no name: the definition is refused, nothing saved
    await pages.wait(lambda: pages.error_text() != "")
    assert agents.list_agents(bea) == []

    user.find("Name").type("Contract reader")
    user.find("Instructions").clear().type("Answer questions about contracts.")
    pages.by_id("agent-create").click()
    await pages.wait(lambda: len(agents.list_agents(bea)) == 1)
    (made,) = agents.list_agents(bea)
    await pages.wait_for_path(f"/agents/{made.id}")
    assert made.definition["instructions"] == "Answer questions about contracts."
    assert pages.text_of("agent-version").startswith("Active version 1 (latest 1).")

    # A save is a new version; the history shows both.
    user.find("Instructions").clear().type("Answer briefly, citing clauses.")
    user.find("Change note (optional)").type("shorter answers")
    pages.by_id("agent-save").click()
    await pages.wait(lambda: agents.get(bea, made.id).active_version == 2)
    await pages.wait(lambda: pages.text_of("agent-version").startswith("Active version 2"))
    await user.should_see("shorter answers")

    pages.labelled("Compare version 1").click()
    await pages.wait(lambda: _ids(pages, "version-diff"))
    diff = pages.element("version-diff")
    assert {"field": "instructions", "old": "Answer questions about contracts.",
            "new": "Answer briefly, citing clauses."} in diff.rows  # fmt: skip

    user.find(kind=ui.button, content="Roll back to version 1").click()
    await pages.wait(lambda: agents.get(bea, made.id).active_version == 3)
    assert agents.get(bea, made.id).definition["instructions"] == (
        "Answer questions about contracts."
    )
    await pages.wait(lambda: pages.text_of("agent-version").startswith("Active version 3"))
    await user.should_see("Rolled back: the active version now equals version 1.")


async def test_a_builder_shares_an_agent_with_a_member(pages: Pages) -> None:
    agents = pages.appliance.services.agents
    bea, max_ = pages.people["bea"], pages.people["max"]
    made = agents.create(bea, {"name": "Helpdesk", "model": {"model": "m"}})
    await pages.open_as("bea", f"/agents/{made.id}")
    pages.by_id("share-submit").click()
    await pages.user.should_see("Choose a user or group to share with.")
    with pages.user:
        pages.field("Share with").value = f"user:{max_.id}"
    pages.by_id("share-submit").click()
    await pages.wait(lambda: [a.name for a in agents.list_agents(max_)] == ["Helpdesk"])
    await pages.wait(lambda: _has_text(pages, "user max: can use"))

    pages.labelled("Stop sharing with user max").click()
    await pages.wait(lambda: agents.list_agents(max_) == [])
    await pages.wait(lambda: not _has_text(pages, "user max: can use"))  # the page reloaded


async def test_import_explains_bad_json_and_imports_an_export(pages: Pages) -> None:
    agents, bea = pages.appliance.services.agents, pages.people["bea"]
    source = agents.create(bea, {"name": "Translator", "model": {"model": "m"}})
    exported = agents.export(bea, source.id)
    await pages.open_as("bea", "/agents")
    pages.by_id("import-agent").click()
    pages.by_id("import-text").type("{not json")
    pages.by_id("import-submit").click()
    await pages.wait(lambda: "This is not valid JSON" in pages.error_text())
    assert len(agents.list_agents(bea)) == 1

    pages.by_id("import-text").clear().type(json.dumps(exported))
    pages.by_id("import-submit").click()
    await pages.wait(lambda: len(agents.list_agents(bea)) == 2)
    imported = next(a for a in agents.list_agents(bea) if a.id != source.id)
    await pages.wait_for_path(f"/agents/{imported.id}")
    assert imported.name == "Translator"


async def test_a_template_becomes_an_agent(pages: Pages) -> None:
    agents, bea = pages.appliance.services.agents, pages.people["bea"]
    template = list_templates()[0]
    await pages.open_as("bea", "/agents")
    pages.user.find(kind=ui.button, content=f"Use {template['name']}").click()
    await pages.wait(lambda: len(agents.list_agents(bea)) == 1)
    (made,) = agents.list_agents(bea)
    await pages.wait_for_path(f"/agents/{made.id}")
    assert made.name == template["name"]
    await pages.user.open("/agents")
    await pages.user.should_see(kind=ui.link, content=str(template["name"]))


def _ids(pages: Pages, dom_id: str) -> bool:
    return any(e.props.get("id") == dom_id for e in pages.user.current_layout.descendants())


def _has_text(pages: Pages, text: str) -> bool:
    return any(getattr(e, "text", None) == text for e in pages.user.current_layout.descendants())
