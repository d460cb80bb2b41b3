"""The knowledge pages in real Chromium: create a base, upload a document and watch it become
searchable, search it, delete it; auditors and anonymous visitors kept out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import screenshot
from tests.ui.site import Site, sign_in, start_site

pytestmark = pytest.mark.browser
HANDBOOK = (
    "Remote work policy.\n\nEmployees may work from home on Tuesdays and Thursdays. "
    "The lighthouse office in Brest closes at six.\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("knowledge"))
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1280, "height": 720})
    # The machine may be shared with other test runs: allow slow steps.
    tab.set_default_timeout(60000)
    yield tab
    tab.close()


def test_anonymous_and_auditors_are_kept_out(page: Any, site: Site) -> None:
    page.context.clear_cookies()
    for path in ("/knowledge", "/knowledge/abc"):
        page.goto(f"{site.url}{path}")
        page.wait_for_url("**/login")
    sign_in(page, site, "aud")
    page.goto(f"{site.url}/knowledge")
    page.locator("#refused").wait_for()


def test_upload_then_search_then_delete(page: Any, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, "bea")
    page.goto(f"{site.url}/knowledge")
    page.get_by_label("Knowledge base name").fill("Handbook")
    page.click("#kb-create")
    page.wait_for_url("**/knowledge/*")
    page.get_by_role("heading", name="Handbook").wait_for()
    document = tmp_path / "policy.txt"
    document.write_text(HANDBOOK)
    page.locator("#kb-upload input[type=file]").set_input_files(str(document))
    row = page.locator(".kb-document").filter(has_text="policy.txt")
    row.locator(".kb-status").filter(has_text=re.compile("searchable|Ready")).wait_for(
        timeout=120000
    )
    page.get_by_label("Search this knowledge base").fill("lighthouse")
    page.click("#kb-search")
    hit = page.locator(".kb-hit").first
    hit.filter(has_text="Brest").wait_for(timeout=60000)
    assert "policy" in hit.inner_text()
    screenshot(page, "knowledge")
    page.get_by_role("button", name="Delete policy.txt").click()
    page.locator("#kb-documents").get_by_text("No documents yet.").wait_for()


def test_a_member_sees_no_upload_on_an_unshared_base(page: Any, site: Site) -> None:
    sign_in(page, site, "max")
    page.goto(f"{site.url}/knowledge")
    page.get_by_text("No knowledge bases are shared with you yet.").wait_for()
    assert page.get_by_label("Knowledge base name").count() == 0
