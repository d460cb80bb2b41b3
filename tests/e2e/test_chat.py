"""The chat page in real Chromium against a real server and the real bundled SmolLM2:
streamed tokens, stop, stored conversations (list, search, rename, delete), feedback, and
model output that tries to inject HTML staying text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance import Appliance
from appliance.identity.models import User
from tests.e2e.conftest import screenshot
from tests.ui.site import Site, definition, sign_in, start_site

pytestmark = pytest.mark.browser

INJECTION = (
    "Here is <script>window.__xss = 1</script> and "
    '<img src="x" onerror="window.__xss = 2"> and [a link](javascript:window.__xss=3).\n\n'
    "```python\nprint('<b>bold</b>')\n```\n"
)


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    agents, conversations = appliance.services.agents, appliance.services.conversations
    short = agents.create(people["bea"], definition("Short answers")).id
    talker = agents.create(people["bea"], definition("Long answers", max_tokens=400)).id
    maths = agents.create(
        people["bea"],
        definition("Maths", max_tokens=24, tools=[{"name": "calculator"}], limits={"max_steps": 3}),
    ).id
    for agent in (short, talker, maths):
        agents.share(people["bea"], agent, "use", user_id=people["max"].id)
    conv = conversations.create(people["max"], short, 1, "Injected answer")
    conversations.append(
        people["max"],
        conv["id"],
        [{"role": "user", "content": "show me"}, {"role": "assistant", "content": INJECTION}],
    )
    return {"short": short, "talker": talker, "maths": maths, "injected": conv["id"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("chat"), seed)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1280, "height": 720})
    # The machine may be shared with other test runs: allow slow steps.
    tab.set_default_timeout(60000)
    yield tab
    tab.close()


def test_anonymous_visitors_are_sent_to_sign_in(page: Any, site: Site) -> None:
    page.context.clear_cookies()
    for path in ("/chat", f"/chat/{site.seeded['injected']}"):
        page.goto(f"{site.url}{path}")
        page.wait_for_url("**/login")


def test_an_auditor_cannot_chat(page: Any, site: Site) -> None:
    sign_in(page, site, "aud")
    page.goto(f"{site.url}/chat")
    page.locator("#refused").filter(has_text="admin, builder, member").wait_for()
    assert page.locator("#chat-input").count() == 0


def test_model_html_is_shown_as_text_never_run(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat/{site.seeded['injected']}")
    answer = page.locator(".chat-assistant .chat-markdown").first
    answer.filter(has_text="<script>window.__xss = 1</script>").wait_for()
    assert "onerror" in answer.inner_text()
    messages = page.locator("#messages")
    assert messages.locator("script").count() == 0
    assert messages.locator("img").count() == 0
    assert messages.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("window.__xss === undefined")
    code = messages.locator(".codehilite")
    assert "print('<b>bold</b>')" in code.inner_text()
    assert code.locator("b").count() == 0
    assert code.locator("span.nb").count() >= 1  # Pygments highlighted `print`
    assert page.get_by_role("button", name="Copy code block 2").count() == 1
    screenshot(page, "chat-injection")


def test_a_member_chats_with_the_real_model(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    page.get_by_label("Agent").click()
    page.get_by_role("option", name="Short answers").click()
    page.get_by_label("Message", exact=True).fill("Say hello to Ada.")
    page.click("#send")
    # Tokens appear in the live answer before the turn is stored.
    page.wait_for_function(
        "() => { const e = document.querySelector('.chat-live');"
        " return e !== null && e.innerText.trim().length > 0; }",
        timeout=120000,
    )
    page.wait_for_url("**/chat/*", timeout=120000)
    page.locator(".chat-live").wait_for(state="detached", timeout=60000)
    assert page.locator(".chat-user").last.inner_text() == "Say hello to Ada."
    answer = page.locator(".chat-assistant").last
    assert answer.inner_text().strip()
    page.locator("#conversation-list").get_by_role("link", name="Say hello to Ada.").wait_for()
    page.get_by_role("button", name="Good answer").last.click()
    page.get_by_text("your feedback was saved").wait_for()
    screenshot(page, "chat-answer")
    page.click("#regenerate")
    page.locator(".chat-user").nth(1).wait_for(timeout=120000)
    page.locator(".chat-live").wait_for(state="detached", timeout=120000)
    page.locator(".chat-assistant").nth(1).wait_for()
    assert page.locator(".chat-user").nth(1).inner_text() == "Say hello to Ada."


def test_tool_calls_show_as_cards(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat?agent={site.seeded['maths']}")
    page.get_by_label("Message", exact=True).fill("what is 1234*5678")
    page.click("#send")
    card = page.locator(".tool-card").first
    card.filter(has_text="Tool call: calculator").wait_for(timeout=120000)
    card.locator(".tool-status").filter(has_text="Finished after").wait_for(timeout=120000)
    assert "7006652" in card.locator(".tool-output").inner_text()
    page.wait_for_url("**/chat/*", timeout=120000)
    # The stored conversation shows the same card (arguments and output) after reloading.
    page.reload()
    stored = page.locator(".tool-card").first
    stored.filter(has_text="1234").wait_for()
    assert "7006652" in stored.inner_text()
    screenshot(page, "chat-tool-card")


def test_the_theme_switch_is_remembered(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    page.click("#theme-switch")
    page.locator("body.body--dark").wait_for()
    page.reload()
    page.locator("body.body--dark").wait_for()
    screenshot(page, "chat-dark")
    page.click("#theme-switch")
    page.locator("body.body--light").wait_for()


def test_stop_cancels_a_running_answer(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    page.get_by_label("Agent").click()
    page.get_by_role("option", name="Long answers").click()
    page.get_by_label("Message", exact=True).fill("Write a long story about a lighthouse keeper.")
    page.click("#send")
    page.wait_for_function(
        "() => { const e = document.querySelector('.chat-live');"
        " return e !== null && e.innerText.trim().length > 0; }",
        timeout=120000,
    )
    page.click("#stop")
    page.locator("#chat-error").filter(has_text="You stopped the answer").wait_for(timeout=30000)
    assert page.url.endswith("/chat")  # nothing was stored, so no conversation opened
    screenshot(page, "chat-stopped")


def test_search_rename_and_delete_conversations(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    listing = page.locator("#conversation-list")
    listing.get_by_role("link", name="Injected answer").wait_for()
    page.get_by_label("Search conversations").fill("lighthouse")
    listing.get_by_text("No conversations match.").wait_for()
    page.get_by_label("Search conversations").fill("bold")
    listing.get_by_role("link", name="Injected answer").wait_for()
    assert listing.locator(".conversation-row").count() == 1
    page.get_by_role("button", name="Rename Injected answer").click()
    page.get_by_label("Title", exact=True).fill("Renamed by Max")
    page.click("#rename-save")
    page.get_by_label("Search conversations").fill("")
    listing.get_by_role("link", name="Renamed by Max").wait_for()
    page.get_by_role("button", name="Delete Renamed by Max").click()
    page.click("#delete-confirm")
    listing.get_by_role("link", name="Renamed by Max").wait_for(state="detached")
    page.goto(f"{site.url}/chat/{site.seeded['injected']}")
    page.get_by_text("does not exist or is not yours").wait_for()
