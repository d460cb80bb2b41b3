"""The whole first run in real Chromium against a real `enclave run` on a fresh home: passphrase
→ administrator → license (a tampered file refused, then the shipped evaluation license started)
→ bundled model check → first agent from a template → chat → a streamed answer from the real
local model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.licensing.evaluation import SHIPPED_EVALUATION
from tests.appliance.licensing.license_world import make_issuer
from tests.conftest import PASSPHRASE
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.browser
ADMIN_PASSWORD = "first run secret words 42"


def test_from_a_fresh_home_to_a_streamed_answer(
    tmp_path: Path, start_server: Any, browser: Any
) -> None:
    began = time.monotonic()
    server = start_server(tmp_path / "home", ENCLAVE_MODEL_THREADS="2")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(60000)
    page.goto(f"{server.url}/")
    page.wait_for_url("**/setup")
    page.get_by_label("Admin passphrase").fill(PASSPHRASE)
    page.get_by_label("Repeat passphrase").fill(PASSPHRASE)
    page.click("#setup-submit")
    page.wait_for_url("**/setup/admin")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat password").fill(ADMIN_PASSWORD)
    page.click("#admin-submit")

    # License: a file altered by one byte is refused (and changes nothing) ...
    page.wait_for_url("**/setup/license")
    page.locator("#wizard-step").filter(has_text="Step 3 of 6: License").wait_for()
    page.locator("#license-state").filter(has_text="No license is installed").wait_for()
    tampered = tmp_path / "tampered.lic"
    tampered.write_bytes(SHIPPED_EVALUATION.read_bytes().replace(b'"seats":', b'"seats":9'))
    page.get_by_label("License file").set_input_files(str(tampered))
    page.locator("#license-error").filter(has_text="altered").wait_for()
    assert page.url.endswith("/setup/license")
    screenshot(page, "wizard-license")
    # ... then the evaluation license shipped in the package is started.
    page.get_by_role("button", name="Start the 30-day evaluation").click()

    # Model: the bundled model is found and opens in llama.cpp.
    page.wait_for_url("**/setup/model")
    page.locator("#model-ready").wait_for(timeout=120000)
    assert page.locator(".model-check-step.text-negative").count() == 0
    assert page.locator(".model-check-step").count() == 4
    screenshot(page, "wizard-model")
    page.click("#model-continue")

    # First agent from a template, then the chat opens with it selected.
    page.wait_for_url("**/setup/agent")
    assert page.locator("#wizard-templates .template-card").count() >= 5
    screenshot(page, "wizard-agent")
    page.get_by_role("button", name="Use Translator").click()
    page.wait_for_url("**/chat?agent=*")
    assert "Translator" in page.locator("#agent-picker").inner_text()
    page.get_by_label("Message", exact=True).fill("Translate into French: Good morning.")
    page.click("#send")
    page.wait_for_function(
        "() => { const e = document.querySelector('.chat-live');"
        " return e !== null && e.innerText.trim().length > 0; }",
        timeout=180000,
    )
    streamed = time.monotonic() - began
    page.wait_for_url("**/chat/*", timeout=180000)
    page.locator(".chat-live").wait_for(state="detached", timeout=60000)
    assert page.locator(".chat-assistant").last.inner_text().strip()
    screenshot(page, "wizard-chat")
    print(f"first run: fresh home to the first streamed token in {streamed:.1f} s")

    # The evaluation is in force (for 30 days from now) and cannot be started again.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    status = httpx.get(f"{server.url}/api/v1/license/status", cookies=cookies).json()
    assert status["state"] in ("valid", "expiring") and status["tier"] == "evaluation"
    assert status["days_left"] in (29, 30)
    page.goto(f"{server.url}/setup/license")
    page.locator("#license-summary").filter(has_text="Evaluation").wait_for()
    assert page.get_by_role("button", name="Start the 30-day evaluation").count() == 0
    page.click("#license-continue")
    page.wait_for_url("**/setup/model")
    page.close()


def test_a_license_file_is_imported_in_the_wizard(
    tmp_path: Path, start_server: Any, browser: Any
) -> None:
    """With a license required and another vendor key (no evaluation offered, no skipping),
    the vendor's file chosen in the browser becomes the license in force."""
    issuer = make_issuer(tmp_path / "vendor")
    _lic, data = issuer.issue_license(customer="ACME Corp", seats=3, days=90)
    license_file = tmp_path / "acme.lic"
    license_file.write_bytes(data)
    server = start_server(
        tmp_path / "home",
        ENCLAVE_LICENSE_REQUIRED="true",
        ENCLAVE_LICENSE_PUBLIC_KEYS=str(issuer.directory / "vendor-ed25519.pem"),
    )
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(60000)
    page.goto(f"{server.url}/setup")
    page.get_by_label("Admin passphrase").fill(PASSPHRASE)
    page.get_by_label("Repeat passphrase").fill(PASSPHRASE)
    page.click("#setup-submit")
    page.wait_for_url("**/setup/admin")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat password").fill(ADMIN_PASSWORD)
    page.click("#admin-submit")
    page.wait_for_url("**/setup/license")
    page.locator("#license-state").filter(has_text="read-only").wait_for()
    assert page.locator("#start-evaluation, #license-skip").count() == 0
    page.get_by_label("License file").set_input_files(str(license_file))
    page.wait_for_url("**/setup/model")
    page.goto(f"{server.url}/setup/license")
    page.locator("#license-summary").filter(has_text="ACME Corp, tier team, 3 seats").wait_for()
    page.close()
