"""Usable at 200 % zoom on a 1280×720 laptop, in real Chromium: the CSS viewport is then
640×360 pixels at a device scale factor of 2 (what the browser's zoom does). On the chat and
admin pages nothing overflows sideways (no horizontal scrolling of the page or its main
content), and the primary controls are visible and reachable by scrolling down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance import Appliance
from appliance.identity.models import User
from tests.e2e.conftest import screenshot
from tests.ui.site import ADMIN_PAGES, Site, definition, sign_in, start_site

pytestmark = pytest.mark.browser
WIDTH, HEIGHT = 640, 360  # 1280×720 at 200 %

# Elements wider than the viewport or reaching past its right edge (what overflows).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    if (box.right > width + 1 || box.left < -1) {
      const style = getComputedStyle(el);
      if (el.closest('.q-loading-bar')) continue;  // Quasar's page-load bar, off-screen
      let hidden = false;
      for (let p = el.parentElement; p; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX;
        if ((o === 'auto' || o === 'scroll' || o === 'hidden')
            && p.getBoundingClientRect().right <= width + 1) { hidden = true; break; }
      }
      if (!hidden) out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}`
        .slice(0, 120) + ` right=${Math.round(box.right)}`);
    }
  }
  return {scroll: document.scrollingElement.scrollWidth, width, elements: out.slice(0, 8)};
}"""


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    agent = appliance.services.agents.create(people["ada"], definition("Zoom helper")).id
    conversations = appliance.services.conversations
    conv = conversations.create(people["ada"], agent, 1, "A conversation with a long title")
    conversations.append(
        people["ada"],
        conv["id"],
        [
            {"role": "user", "content": "Show me a wide table and some code."},
            {
                "role": "assistant",
                "content": "| a | b | c | d | e | f |\n|---|---|---|---|---|---|\n"
                + "| "
                + " | ".join(["a rather long cell value"] * 6)
                + " |\n\n"
                "```python\nprint('" + "x" * 150 + "')\n```\n",
            },
        ],
    )
    return {"agent": agent, "conversation": conv["id"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("zoom"), seed)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=2)
    tab.set_default_timeout(60000)
    sign_in(tab, site, "ada")
    yield tab
    tab.close()


def no_sideways_overflow(page: Any, name: str) -> None:
    page.wait_for_timeout(300)  # let Quasar finish laying out
    found = page.evaluate(OVERFLOW)
    screenshot(page, f"zoom-{name}")
    assert found["scroll"] <= found["width"] + 1, found
    assert found["elements"] == [], found


def reachable(page: Any, selector: str | Any) -> None:
    """``selector`` (or a locator) is visible, and inside the viewport once scrolled to."""
    control = (page.locator(selector) if isinstance(selector, str) else selector).first
    control.scroll_into_view_if_needed()
    assert control.is_visible(), selector
    box = control.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 1, (
        selector,
        box,
    )
    # Not hidden under the fixed header either.
    header = page.locator("header").first.bounding_box()
    top = (
        header["y"] + header["height"]
        if header and control.locator("xpath=ancestor::header").count() == 0
        else 0
    )
    assert box["y"] >= top - 1 and box["y"] + min(box["height"], HEIGHT) <= HEIGHT + 1, (
        selector,
        box,
        top,
    )


@pytest.mark.parametrize("which", ["new", "stored"])
def test_chat_at_200_percent(page: Any, site: Site, which: str) -> None:
    path = "/chat" if which == "new" else f"/chat/{site.seeded['conversation']}"
    page.goto(f"{site.url}{path}")
    page.locator("#send").wait_for(state="attached")
    if which == "stored":
        page.locator(".chat-assistant").first.wait_for()
    no_sideways_overflow(page, f"chat-{which}")
    for control in ("#agent-picker", page.get_by_label("Message", exact=True), "#send"):
        reachable(page, control)
    reachable(page, "#new-conversation")
    reachable(page, page.get_by_label("Search conversations"))


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_at_200_percent(page: Any, site: Site, path: str) -> None:
    page.goto(f"{site.url}{path}")
    page.get_by_role("heading", level=1).wait_for()
    no_sideways_overflow(page, path.strip("/").replace("/", "-"))
    reachable(page, "header a:has-text('Enclave')")
    reachable(page, "#theme-switch")
    reachable(page, "h1, [role=heading][aria-level='1']")
