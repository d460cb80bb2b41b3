"""Citations in real Chromium against a real server: a document uploaded in the UI, a question
to the Document Q&A agent, the answer shows its source, and clicking it opens the cited passage.

The bundled 135M model does not reliably choose to search (it often answers from its own
"knowledge"), so the agent's model here is a scripted OpenAI-compatible endpoint on 127.0.0.1
that always asks for ``knowledge_search`` first: the run loop, the tool, the search (BM25 and
vectors over the uploaded file), the citation events and the stored answer are all real.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from appliance.agents.templates import template_document
from appliance.identity.models import User
from appliance.knowledge.runtime import build_runtime
from appliance.providers.service import EndpointSpec
from tests.e2e.conftest import screenshot
from tests.ui.site import Site, sign_in, start_site

pytestmark = pytest.mark.browser
POLICY = (
    "# Remote work\n\nEmployees may work from home on Tuesdays and Thursdays. "
    "Remote work on other days needs the manager's approval.\n\n"
    "# Offices\n\nThe lighthouse office in Brest closes at six in the evening.\n"
)
ANSWER = "Employees may work from home on Tuesdays and Thursdays [1]."


class ScriptedModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint with a fixed script: a JSON step asking for
    knowledge_search until a search result is in the conversation, then ``respond``; the free
    answer is streamed word by word."""

    def do_GET(self) -> None:
        self._send(404, b"{}", "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if not self.path.endswith("/chat/completions"):  # no tokenizer here: Enclave estimates
            self._send(404, b"{}", "application/json")
            return
        searched = "Tuesdays" in json.dumps(body["messages"])
        if "response_format" in body:
            step = (
                {"tool": "respond"}
                if searched
                else {
                    "tool": "knowledge_search",
                    "arguments": {"query": "work from home days"},
                }
            )
            words = [json.dumps(step)]
        else:
            words = [w + " " for w in ANSWER.split(" ")]
        chunks = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, sse.encode(), "text/event-stream")

    def _send(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def seeder(base_url: str) -> Any:
    def seed(appliance: Appliance, people: dict[str, User]) -> dict[str, Any]:
        runtime = build_runtime(appliance, start_worker=False)
        try:
            kb = runtime.service.create_base(people["bea"], "Handbook")
        finally:
            runtime.close()
        endpoint = appliance.services.providers.create(
            EndpointSpec(
                "scripted",
                "openai_compatible",
                base_url,
                "scripted",
                {"context_length": 4096, "tools": False, "max_retries": 0},
            ),
            None,
        )
        agent = template_document("document-qa")
        agent["knowledge_bases"] = [kb.id]
        agent["model"] = {"provider": endpoint.id, "model": "scripted"}
        agent["limits"] = {"max_steps": 3}
        made = appliance.services.agents.create(people["bea"], agent)
        return {"kb": kb.id, "agent": made.id}

    return seed


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, scripted_model: str) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("citations"), seeder(scripted_model))
    yield running
    running.server.stop()


def test_an_answer_cites_the_uploaded_document(browser: Any, site: Site, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(60000)
    sign_in(page, site, "bea")
    page.goto(f"{site.url}/knowledge/{site.seeded['kb']}")
    document = tmp_path / "policy.md"
    document.write_text(POLICY)
    page.locator("#kb-upload input[type=file]").set_input_files(str(document))
    row = page.locator(".kb-document").filter(has_text="policy.md")
    row.locator(".kb-status").filter(has_text=re.compile("searchable|Ready")).wait_for(
        timeout=120000
    )

    page.goto(f"{site.url}/chat?agent={site.seeded['agent']}")
    page.get_by_label("Message", exact=True).fill("On which days may employees work from home?")
    page.click("#send")
    card = page.locator(".tool-card").first
    card.filter(has_text="knowledge_search").wait_for(timeout=120000)
    # "Finished after N s" live, "Finished" once the stored turn is shown: the scripted model
    # answers within a second, so either may be on the page by now.
    card.locator(".tool-status").filter(has_text="Finished").wait_for(timeout=120000)
    live_source = page.locator(".citation-chip").first
    live_source.wait_for()
    assert "policy" in live_source.inner_text()
    page.wait_for_url("**/chat/*")
    assert "Tuesdays and Thursdays" in page.locator(".chat-assistant").last.inner_text()

    # The stored answer keeps its sources; a click opens the passage read from the base.
    page.reload()
    source = page.locator(".chat-assistant .citation-chip").first
    source.wait_for()
    source.click()
    dialog = page.locator(".citation-dialog")
    dialog.wait_for()
    # Document and section, then the passage itself: that section only.
    assert dialog.locator(".citation-source").inner_text() == "policy, Remote work"
    passage = dialog.locator(".citation-passage").inner_text()
    assert "Tuesdays and Thursdays" in passage and "Brest" not in passage
    screenshot(page, "chat-citation")
    page.click("#citation-close")
    dialog.wait_for(state="detached")
    page.close()
