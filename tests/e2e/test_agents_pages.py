"""The agent pages in real Chromium: create from a template, edit, compare, roll back, export,
import, share; members and anonymous visitors kept out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import screenshot
from tests.ui.site import Site, sign_in, start_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("agents"))
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    # The machine may be shared with other test runs: allow slow steps.
    tab.set_default_timeout(60000)
    yield tab
    tab.close()


def test_anonymous_and_members_are_kept_out(page: Any, site: Site) -> None:
    page.context.clear_cookies()
    for path in ("/agents", "/agents/new", "/agents/0123"):
        page.goto(f"{site.url}{path}")
        page.wait_for_url("**/login")
    sign_in(page, site, "max")
    for path in ("/agents", "/agents/new"):
        page.goto(f"{site.url}{path}")
        page.locator("#refused").filter(has_text="admin, builder").wait_for()
        assert page.get_by_label("Instructions").count() == 0


def test_template_edit_compare_rollback(page: Any, site: Site) -> None:
    sign_in(page, site, "bea")
    page.goto(f"{site.url}/agents")
    page.get_by_role("button", name="Use Summariser").click()
    page.wait_for_url("**/agents/*")
    page.locator("#agent-version").filter(has_text="Active version 1").wait_for()
    instructions = page.get_by_label("Instructions")
    original = instructions.input_value()
    assert "bullet points" in original
    instructions.fill("Summarise in one sentence.")
    page.get_by_label("Change note (optional)").fill("Shorter summaries")
    page.click("#agent-save")
    page.locator("#agent-version").filter(has_text="Active version 2").wait_for()
    assert page.get_by_label("Instructions").input_value() == "Summarise in one sentence."
    history = page.locator("#version-history")
    history.get_by_text("Shorter summaries").wait_for()
    page.get_by_role("button", name="Compare version 1").click()
    diff = page.locator("#version-diff")
    diff.get_by_text("instructions", exact=True).wait_for()
    assert "Summarise in one sentence." in diff.inner_text()
    screenshot(page, "agent-diff")
    page.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Roll back to version 1").click()
    page.locator("#agent-version").filter(has_text="Active version 3").wait_for()
    assert page.get_by_label("Instructions").input_value() == original
    history.get_by_text("Rollback to version 1.").wait_for()
    screenshot(page, "agent-history")


def test_export_then_import_and_share(page: Any, site: Site) -> None:
    sign_in(page, site, "bea")
    page.goto(f"{site.url}/agents")
    page.get_by_role("button", name="Use Translator").click()
    page.wait_for_url("**/agents/*")
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["format"] == "enclave-agent"
    assert exported["definition"]["name"] == "Translator"
    exported["definition"]["name"] = "Imported translator"
    page.goto(f"{site.url}/agents")
    page.click("#import-agent")
    page.get_by_label("Exported agent").fill("{not json")
    page.click("#import-submit")
    page.get_by_role("alert").filter(has_text="not valid JSON").wait_for()
    page.get_by_label("Exported agent").fill(json.dumps(exported))
    page.click("#import-submit")
    page.wait_for_url("**/agents/*")
    page.get_by_role("heading", name="Imported translator").wait_for()
    page.get_by_label("Share with").click()
    page.get_by_role("option", name="User max").click()
    page.click("#share-submit")
    page.locator(".share-row").filter(has_text="user max: can use").wait_for()
    screenshot(page, "agent-shared")
    sign_in(page, site, "max")
    page.goto(f"{site.url}/chat")
    page.get_by_label("Agent").click()
    page.get_by_role("option", name="Imported translator").wait_for()
