"""Screenshots of every page for the docs, taken from a real server in real Chromium.

Run by hand after a UI change (not part of the test suite)::

    .venv/bin/python -m tests.e2e.screenshots            # writes docs/screenshots/*.png
    .venv/bin/python -m tests.e2e.screenshots --out DIR

A fresh home gives the first-run pages; a seeded home (people of every role, an agent, a
knowledge base with a document, a conversation with a cited answer) gives the rest. Chat is
taken in the light and the dark theme. Every shot is the 1280×720 window a laptop shows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance import Appliance
from appliance.identity.models import User
from appliance.knowledge.runtime import build_runtime
from tests.conftest import PASSPHRASE
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Server, fast_env
from tests.ui.site import definition, sign_in, start_site

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "screenshots"
HANDBOOK = (
    b"# Remote work\n\nEmployees may work from home on Tuesdays and Thursdays.\n\n"
    b"# Offices\n\nThe lighthouse office in Brest closes at six in the evening.\n"
)
ANSWER = (
    "Employees may work from home on **Tuesdays and Thursdays** [1]. Other days need the "
    "manager's approval.\n\n```python\ndays = ['Tuesday', 'Thursday']\n```\n"
)
# (file name, path) of the seeded site's pages, as the administrator sees them.
PAGES = (
    ("status", "/"),
    ("setup-license", "/setup/license"),
    ("setup-model", "/setup/model"),
    ("setup-agent", "/setup/agent"),
    ("agents", "/agents"),
    ("agent-new", "/agents/new"),
    ("knowledge", "/knowledge"),
    ("account", "/account"),
    ("admin", "/admin"),
    ("admin-users", "/admin/users"),
    ("admin-keys", "/admin/keys"),
    ("admin-audit", "/admin/audit"),
    ("admin-models", "/admin/models"),
    ("admin-credits", "/admin/credits"),
    ("admin-health", "/admin/health"),
)


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    """An agent, a knowledge base with a document, and a conversation with a cited answer."""
    runtime = build_runtime(appliance, start_worker=False)
    try:
        kb = runtime.service.create_base(people["ada"], "Handbook")
        doc, _job = runtime.service.add_document(people["ada"], kb.id, "policy.md", [HANDBOOK])
        runtime.worker.run_until_idle()
        found = runtime.searcher.search(people["ada"], "work from home", kb_ids=[kb.id], k=1)
    finally:
        runtime.close()
    agents, conversations = appliance.services.agents, appliance.services.conversations
    agent = agents.create(people["ada"], definition("Handbook helper", knowledge_bases=[kb.id]))
    conv = conversations.create(people["ada"], agent.id, 1, "Working from home")
    conversations.append(
        people["ada"],
        conv["id"],
        [
            {"role": "user", "content": "On which days may I work from home?"},
            {
                "role": "assistant",
                "content": ANSWER,
                "citations": [hit.citation().__dict__ for hit in found.hits],
            },
        ],
    )
    return {"kb": kb.id, "agent": agent.id, "conversation": conv["id"], "document": doc.id}


def shoot(page: Any, out: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # charts and fonts settle
    page.screenshot(path=str(out / f"{name}.png"))
    print(f"  {name}.png")


def first_run_pages(browser: Any, out: Path, work: Path) -> None:
    """/setup and /setup/admin need a fresh home."""
    (work / "fresh").mkdir()
    server = Server(work / "fresh" / "home", fast_env(), [])
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{server.url}/setup")
        page.get_by_label("Admin passphrase").wait_for()
        shoot(page, out, "setup")
        page.get_by_label("Admin passphrase").fill(PASSPHRASE)
        page.get_by_label("Repeat passphrase").fill(PASSPHRASE)
        page.click("#setup-submit")
        page.wait_for_url("**/setup/admin", timeout=60000)
        page.get_by_label("Repeat password").wait_for()
        shoot(page, out, "setup-admin")
        page.close()
    finally:
        server.stop()


def seeded_pages(browser: Any, out: Path, work: Path) -> None:
    site = start_site(work / "seeded", seed)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.set_default_timeout(60000)
        sign_in(page, site, "ada")
        for name, path in PAGES:
            page.goto(f"{site.url}{path}")
            page.get_by_role("heading", level=1).first.wait_for()
            if path == "/setup/model":
                page.locator("#model-ready, #model-error:not(:empty)").first.wait_for()
            shoot(page, out, name)
        page.goto(f"{site.url}/knowledge/{site.seeded['kb']}")
        page.locator(".kb-document").first.wait_for()
        shoot(page, out, "knowledge-base")
        page.goto(f"{site.url}/agents/{site.seeded['agent']}")
        page.get_by_role("heading", level=1).first.wait_for()
        shoot(page, out, "agent-detail")
        page.goto(f"{site.url}/chat/{site.seeded['conversation']}")
        page.locator(".citation-chip").first.wait_for()
        shoot(page, out, "chat-light")
        page.locator(".citation-chip").first.click()
        page.locator(".citation-passage").wait_for()
        shoot(page, out, "chat-citation")
        page.keyboard.press("Escape")
        page.click("#theme-switch")
        page.locator("body.body--dark").wait_for()
        shoot(page, out, "chat-dark")
        page.click("#theme-switch")  # leave the browser's choice as it was
        page.close()
    finally:
        site.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            print(f"screenshots into {out}:")
            first_run_pages(browser, out, Path(tmp))
            seeded_pages(browser, out, Path(tmp))
        finally:
            browser.close()
    print(f"done in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
