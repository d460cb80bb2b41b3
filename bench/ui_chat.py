"""The UI benchmark (run it through bench/ui.py, which explains the figures)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from appliance import Appliance
from appliance.identity.models import User
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.ui.site import PASSWORD, definition, sign_in, start_site

PROMPT = "Say hello."
# Timed inside the page: a mutation observer notes when the live answer first shows text.
WATCH_JS = """() => {
  window.__sent = performance.now(); window.__first = null;
  new MutationObserver(() => {
    const e = document.querySelector('.chat-live');
    if (window.__first === null && e !== null && e.innerText.trim().length > 0) {
      window.__first = performance.now();
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
    return {"agent": appliance.services.agents.create(people["bea"], definition("Bench", 8)).id}


def api_first_token(url: str, token: str, agent: str) -> float:
    started = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{url}/api/v1/agents/{agent}/runs",
        json={"input": PROMPT},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    ) as response:
        first = None
        # Read the whole stream (the turn finishes, so runs do not overlap), noting the first token.
        for line in response.iter_lines():
            if first is None and line.startswith("event: token"):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"no token event (status {response.status_code})")
    return first


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    site = start_site(Path(tempfile.mkdtemp(prefix="bench-ui-")), seed)
    try:
        token = httpx.post(
            f"{site.url}/api/v1/auth/login", json={"username": "bea", "password": PASSWORD}
        ).json()["access_token"]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            sign_in(page, site, "bea")
            api_first_token(site.url, token, site.seeded["agent"])  # load the model once
            paints, interactive, browser_first, api_first = [], [], [], []
            for _ in range(runs):
                page.goto(f"{site.url}/chat?agent={site.seeded['agent']}")
                page.get_by_role("button", name="Send").wait_for()
                page.wait_for_function(
                    "() => { const b = document.querySelector('#send');"
                    " return b !== null && !b.disabled; }"
                )
                interactive.append(page.evaluate("performance.now()") / 1000)
                paints.append(
                    page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0].startTime"
                    )
                    / 1000
                )
                page.get_by_label("Message", exact=True).fill(PROMPT)
                page.evaluate(WATCH_JS)
                page.click("#send")
                page.wait_for_function("window.__first !== null", timeout=120000, polling=50)
                browser_first.append(page.evaluate("window.__first - window.__sent") / 1000)
                page.locator(".chat-live").wait_for(state="detached", timeout=120000)
                api_first.append(api_first_token(site.url, token, site.seeded["agent"]))
            browser.close()
    finally:
        site.server.stop()
    print(f"chat page, first contentful paint (median of {runs}): {ms(paints)}")
    print(f"chat page, time to interactive (median of {runs}): {ms(interactive)}")
    print(f"send → first token, browser: {ms(browser_first)}")
    print(f"send → first token, SSE API: {ms(api_first)}")
    ratio = statistics.median(browser_first) / statistics.median(api_first)
    print(f"ratio browser / API: {ratio:.2f}")


if __name__ == "__main__":
    main()
