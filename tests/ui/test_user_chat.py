"""/chat through a simulated user, with the scripted model (a real provider that answers from a
script) standing in for the language model: streamed answer, stored conversation, regenerate,
rename, search, delete, failures explained, feedback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from nicegui import ui

from engine.errors import GenerationFailed
from engine.providers.base import Provider
from engine.providers.scripted import ScriptedProvider
from tests.ui.conftest import Pages


@pytest.fixture
def scripted(pages: Pages) -> Callable[[list[Any]], ScriptedProvider]:
    """Answer runs of agents on provider "scripted" from a script (other providers as usual)."""
    hub = pages.appliance.runs.hub
    usual = hub.remote

    def use(script: list[Any]) -> ScriptedProvider:
        provider = ScriptedProvider(script)

        def remote(choice: Any) -> Provider:
            if choice.provider == "scripted":
                return provider
            assert usual is not None
            return usual(choice)

        hub.remote = remote
        return provider

    return use


def make_agent(pages: Pages, owner: str = "bea") -> str:
    agents = pages.appliance.services.agents
    document = {
        "name": "Scripted helper",
        "instructions": "Answer briefly.",
        "model": {"provider": "scripted", "model": "script"},
        "generation": {"temperature": 0.0, "max_output_tokens": 64},
    }
    return agents.create(pages.people[owner], document).id


def answers(pages: Pages) -> list[str]:
    """The assistant texts on the page (stored and live)."""
    return [
        str(e.content)
        for e in pages.user.current_layout.descendants()
        if isinstance(e, ui.html) and "chat-markdown" in e.classes and e.content
    ]


async def test_a_member_without_agents_is_told_what_to_do(pages: Pages) -> None:
    await pages.open_as("max", "/chat")
    await pages.user.should_see("No agent is available to you yet.")
    pages.by_id("send").click()
    await pages.user.should_see("Type a message first.")
    pages.by_id("chat-input").type("hello?")
    pages.by_id("send").click()
    await pages.user.should_see("Choose an agent first.")


async def test_an_answer_streams_is_stored_and_the_conversation_is_managed(
    pages: Pages, scripted: Callable[[list[Any]], ScriptedProvider]
) -> None:
    user, bea = pages.user, pages.people["bea"]
    conversations = pages.appliance.services.conversations
    provider = scripted(["Trains under **four** hours.", "Book a train."])
    agent_id = make_agent(pages)
    await pages.open_as("bea", f"/chat?agent={agent_id}")
    await pages.wait(lambda: pages.element("agent-picker").value == agent_id)
    await user.should_see("No conversations yet.")

    pages.by_id("chat-input").type("How do I travel to Bern?")
    pages.by_id("send").click()
    await pages.wait(lambda: any("<strong>four</strong>" in a for a in answers(pages)))
    await pages.wait(lambda: len(conversations.list_conversations(bea, None, 50)) == 1)
    (conversation,) = conversations.list_conversations(bea, None, 50)
    stored = conversations.messages(bea, conversation["id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == "Trains under **four** hours."
    assert provider.requests[0].messages[-1].content == "How do I travel to Bern?"
    await user.should_see("How do I travel to Bern?")  # the person's own bubble
    assert not pages.element("agent-picker").enabled  # a conversation keeps its agent
    await pages.wait(lambda: pages.element("regenerate").visible)

    pages.by_id("regenerate").click()  # the same question again, same conversation
    await pages.wait(lambda: any("Book a train." in a for a in answers(pages)))
    await pages.wait(lambda: len(conversations.messages(bea, conversation["id"])) == 4)
    assert provider.requests[1].messages[-1].content == "How do I travel to Bern?"

    # Rename through the list's dialog; the list shows the new title.
    title = conversations.get(bea, conversation["id"])["title"] or "Untitled conversation"
    pages.labelled(f"Rename {title}").click()
    pages.by_id("rename-title").clear().type("Bern trip")
    pages.by_id("rename-save").click()
    await pages.wait(lambda: conversations.get(bea, conversation["id"])["title"] == "Bern trip")
    await user.should_see(kind=ui.link, content="Bern trip")

    user.find("Search conversations").type("zeppelin")
    await user.should_see("No conversations match.")
    user.find("Search conversations").clear().type("Bern")
    await user.should_see(kind=ui.link, content="Bern trip")

    pages.labelled("Delete Bern trip").click()
    pages.by_id("delete-confirm").click()
    await pages.wait(lambda: conversations.list_conversations(bea, None, 50) == [])
    await pages.wait_for_path("/chat")  # it was the open one: a new conversation starts
    await user.should_see("No conversations yet.")


async def test_a_failed_turn_is_explained_and_leaves_nothing_behind(
    pages: Pages, scripted: Callable[[list[Any]], ScriptedProvider]
) -> None:
    scripted([GenerationFailed("the model crashed")])
    agent_id = make_agent(pages, owner="ada")
    await pages.open_as("ada", f"/chat?agent={agent_id}")
    await pages.wait(lambda: pages.element("agent-picker").value == agent_id)
    pages.by_id("chat-input").type("Anything?")
    pages.by_id("send").click()
    await pages.wait(lambda: "(code: " in pages.text_of("chat-error"))
    assert "the model crashed" in pages.text_of("chat-error")
    ada = pages.people["ada"]
    assert pages.appliance.services.conversations.list_conversations(ada, None, 50) == []
    assert pages.element("send").enabled  # ready for the next try


async def test_feedback_on_an_answer_is_saved(
    pages: Pages, scripted: Callable[[list[Any]], ScriptedProvider]
) -> None:
    scripted(["Yes."])
    agent_id = make_agent(pages)
    bea = pages.people["bea"]
    conversations = pages.appliance.services.conversations
    await pages.open_as("bea", f"/chat?agent={agent_id}")
    await pages.wait(lambda: pages.element("agent-picker").value == agent_id)
    pages.by_id("chat-input").type("Is it?")
    pages.by_id("send").click()
    await pages.wait(lambda: len(conversations.list_conversations(bea, None, 50)) == 1)
    (conversation,) = conversations.list_conversations(bea, None, 50)
    await pages.user.open(f"/chat/{conversation['id']}")
    await pages.user.should_see(kind=ui.link, content=conversation["title"] or "Untitled")
    good = pages.labelled("Good answer")
    good.click()
    await pages.wait(lambda: pages.user.notify.contains("Thanks, your feedback was saved."))
    answer = conversations.messages(bea, conversation["id"])[-1]
    assert answer["feedback"]["thumbs"] == 1
    assert good.elements.pop().props["color"] == "positive"  # the choice stays highlighted


async def test_someone_elses_conversation_is_not_shown(
    pages: Pages, scripted: Callable[[list[Any]], ScriptedProvider]
) -> None:
    bea = pages.people["bea"]
    agent_id = make_agent(pages)
    conversation = pages.appliance.services.conversations.create(bea, agent_id, 1, "Secret plans")
    await pages.open_as("max", f"/chat/{conversation['id']}")
    await pages.user.should_see(
        "This conversation does not exist or is not yours. Start a new one."
    )
    await pages.user.should_not_see("Secret plans")
