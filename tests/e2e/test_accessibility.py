"""axe-core on every page in real Chromium: no serious or critical accessibility violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance import Appliance
from appliance.identity.models import User
from appliance.knowledge.runtime import build_runtime
from tests.e2e.conftest import screenshot
from tests.ui.site import PAGES, Site, definition, sign_in, start_site

pytestmark = pytest.mark.browser


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    services = appliance.services
    agent = services.agents.create(people["ada"], definition("Helper")).id
    conv = services.conversations.create(people["ada"], agent, 1, "Accessible answers")
    answer = "A **list**:\n\n- one\n- two\n\n```python\nprint(1)\n```\n"
    services.conversations.append(
        people["ada"],
        conv["id"],
        [{"role": "user", "content": "Show me"}, {"role": "assistant", "content": answer}],
    )
    runtime = build_runtime(appliance, start_worker=False)
    try:
        kb = runtime.service.create_base(people["ada"], "Handbook").id
    finally:
        runtime.close()
    return {"agent": agent, "conversation": conv["id"], "kb": kb}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("a11y"), seed)
    yield running
    running.server.stop()


def serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['html'][:90] for n in v['nodes']][:4]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_axe(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    found: dict[str, list[str]] = {}
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").wait_for()
    found["/login"] = serious(page)
    sign_in(page, site, "ada")
    seeded = [
        f"/agents/{site.seeded['agent']}",
        f"/chat/{site.seeded['conversation']}",
        f"/knowledge/{site.seeded['kb']}",  # the uploader, the document list, the search box
    ]
    for path in (*PAGES, *seeded):
        page.goto(f"{site.url}{path}")
        page.get_by_role("heading", level=1).first.wait_for()
        page.wait_for_load_state("networkidle")
        found[path] = serious(page)
        if path not in seeded:
            screenshot(page, "page" + path.replace("/", "-").rstrip("-"))
    page.close()
    assert {path: v for path, v in found.items() if v} == {}
