"""Every page in real Chromium, in English and in German: no visible text outside the catalog.

What counts (the rule the UI follows, docs/DESIGN.md "D-i18n"):
- checked: every visible text node, and the ``aria-label``, ``placeholder`` and ``title`` of
  visible elements, and the page title;
- data, not checked: anything inside an element with the class ``i18n-data`` (names, messages,
  documents, answers: what people typed or the server stored), table body cells (rows of data),
  a field's current value (``.q-field__native``), code, and icon ligatures;
- accepted: a catalog message in the page's language (placeholders match any text; in a
  message that is only placeholders and punctuation each part must itself be accepted),
  Quasar's own texts from its language pack for that language, and plain data (numbers,
  dates, sizes, ids, the names this test seeded).

The language comes from the browser (``Accept-Language`` through Playwright's locale) and from
the account page's selector (a cookie); both are exercised below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from babel.messages.pofile import read_po

from appliance import Appliance
from appliance.identity.models import User
from tests.e2e.conftest import screenshot
from tests.ui.site import PAGES, PASSWORD, Site, definition, start_site
from ui.i18n import LOCALE_DIR

pytestmark = pytest.mark.browser
SEEDED_NAMES = {"ada", "bea", "max", "aud", "Helper", "Accessible answers", "Handbook", "team"}
SEEDED_NAMES |= {"build server", "chat"}

COLLECT = """() => {
  const data = '.i18n-data, script, style, noscript, .q-icon, .material-icons, pre, code, '
    + '.q-field__native, tbody td, [aria-hidden=true]';
  const visible = el => {
    if (!el.getClientRects().length) return false;
    const style = getComputedStyle(el);
    return style.visibility !== 'hidden' && style.display !== 'none';
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const el = walker.currentNode.parentElement;
    if (text && el && !el.closest(data) && visible(el)) found.push(text);
  }
  for (const el of document.querySelectorAll('[aria-label], [placeholder], [title]')) {
    if (el.closest('.i18n-data') || !visible(el)) continue;
    for (const name of ['aria-label', 'placeholder', 'title']) {
      const value = (el.getAttribute(name) || '').trim();
      if (value) found.push(value);
    }
  }
  found.push(document.title);
  return {texts: found, lang: document.documentElement.lang};
}"""

# Quasar's language pack of the page: its strings, and its functions called with 101, 102, 103.
QUASAR_TEXTS = """() => {
  const out = [];
  const walk = value => {
    if (typeof value === 'string') out.push(value);
    else if (typeof value === 'function') {
      try { out.push(String(value(101, 102, 103))); } catch (e) { /* not a text */ }
    } else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(window.Quasar.lang.props);
  return out;
}"""
DATA = re.compile(
    r"[\d\s.,:;/()%–—·+\-_#×✓✗'\"]*"  # numbers and punctuation
    r"|\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?( UTC)?"  # dates and times
    r"|[0-9a-f]{8,}(-[0-9a-f]{4,})*"  # ids
    r"|\d+(\.\d+)?\s?[KMGT]?i?B( / \d+(\.\d+)?(\s?[KMGT]?i?B|%))?"  # sizes, upload progress
    r"|[a-z]+:\d+"  # audit actors and targets (user:1)
)


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
    group = services.groups.create_group("team")
    services.groups.add_member(group.id, people["bea"].id)
    services.api_keys.create(people["bea"].id, "build server", ["chat"])
    return {"agent": agent, "conversation": conv["id"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("i18n"), seed)
    yield running
    running.server.stop()


@cache
def messages(language: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """The catalog's texts in ``language`` (the English source or the German translations):
    plain ones, and the ones with placeholders as patterns."""
    with (LOCALE_DIR / "messages.pot").open("rb") as handle:
        template = read_po(handle)
    texts: list[str] = []
    if language == "en":
        for message in template:
            if message.id:
                texts += [message.id] if isinstance(message.id, str) else list(message.id)
    else:
        with (LOCALE_DIR / language / "LC_MESSAGES" / "enclave.po").open("rb") as handle:
            translated = read_po(handle)
        for message in translated:
            if message.id:
                strings = message.string
                texts += [strings] if isinstance(strings, str) else list(strings)
    plain = frozenset(t for t in texts if "{" not in t)
    patterns = tuple(_pattern(t) for t in texts if "{" in t)
    return plain, patterns


def _pattern(text: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w*\}", text)
    return re.compile("(.+?)".join(re.escape(p) for p in parts), re.DOTALL)


def accepted(text: str, language: str, quasar: frozenset[str], depth: int = 0) -> bool:
    """Whether ``text`` is a message of ``language``, Quasar's, or data (see the module doc)."""
    text = text.strip()
    if not text or DATA.fullmatch(text) or text in SEEDED_NAMES or text in quasar:
        return True
    plain, patterns = messages(language)
    if text in plain:
        return True
    for pattern in patterns:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if re.search(r"[^\W\d_]", _literal(pattern)):
            return True
        if depth < 3 and all(accepted(g, language, quasar, depth + 1) for g in match.groups()):
            return True
    return False


def _literal(pattern: re.Pattern[str]) -> str:
    """The fixed text of a message pattern (without its placeholders)."""
    return re.sub(r"\\(.)", r"\1", pattern.pattern.replace("(.+?)", ""))


def quasar_texts(page: Any) -> frozenset[str]:
    found = page.evaluate(QUASAR_TEXTS)
    counters = {re.sub(r"10[123]", "0", t) for t in found}
    return frozenset(found) | frozenset(counters)


def normalise_counters(text: str) -> str:
    """Quasar's counters ("1-2 of 2") with their numbers as 0, to compare with its pack."""
    return re.sub(r"\d+", "0", text)


def sign_in_by_api(page: Any, site: Site, name: str) -> None:
    """Sign in without the (language-dependent) form: the page's own context gets the cookie."""
    page.context.clear_cookies()
    answer = page.request.post(
        f"{site.url}/api/v1/auth/session", data={"username": name, "password": PASSWORD}
    )
    assert answer.status == 200, answer.text()


def sweep(page: Any, site: Site, paths: list[str], language: str) -> dict[str, list[str]]:
    """Visit ``paths``; the texts on each that are not accepted."""
    expected_lang = {"en": "en-US", "de": "de-DE"}[language]
    problems: dict[str, list[str]] = {}
    quasar: frozenset[str] | None = None
    for path in paths:
        page.goto(f"{site.url}{path}")
        page.get_by_role("heading", level=1).first.wait_for()
        page.wait_for_load_state("networkidle")
        if quasar is None:
            quasar = quasar_texts(page)
        seen = page.evaluate(COLLECT)
        assert seen["lang"] == expected_lang, path
        bad = sorted(
            {
                t
                for t in seen["texts"]
                if not accepted(t, language, quasar) and normalise_counters(t) not in quasar
            }
        )
        if bad:
            problems[path] = bad
    return problems


def every_page(site: Site, kb_path: str) -> list[str]:
    seeded = [f"/agents/{site.seeded['agent']}", f"/chat/{site.seeded['conversation']}"]
    return [*PAGES, *seeded, kb_path]


@pytest.fixture(scope="module")
def kb_path(browser: Any, site: Site) -> str:
    """A knowledge base made through the page (its page is one of those checked)."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60000)
    sign_in_by_api(page, site, "ada")
    page.goto(f"{site.url}/knowledge")
    page.get_by_label("Knowledge base name").fill("Handbook")
    page.click("#kb-create")
    page.wait_for_url("**/knowledge/*")
    path = "/" + page.url.split("/", 3)[3]
    context.close()
    return path


@pytest.mark.parametrize("locale", ["en-US", "de-DE"])
def test_no_visible_text_is_outside_the_catalog(
    browser: Any, site: Site, kb_path: str, locale: str
) -> None:
    language = locale[:2]
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60000)
    try:
        page.goto(f"{site.url}/login")
        page.get_by_role("heading", level=1).wait_for()
        public = sweep(page, site, ["/login"], language)
        sign_in_by_api(page, site, "ada")
        problems = {**public, **sweep(page, site, every_page(site, kb_path), language)}
        if language == "de":
            page.goto(f"{site.url}/admin/credits")
            page.get_by_role("heading", level=1).wait_for()
            screenshot(page, "i18n-de-admin-credits")
    finally:
        context.close()
    assert problems == {}


def test_the_browser_language_picks_german(browser: Any, site: Site) -> None:
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    page.set_default_timeout(60000)
    try:
        page.goto(f"{site.url}/login")
        page.get_by_role("heading", name="Anmelden").wait_for()
        assert page.evaluate("document.documentElement.lang") == "de-DE"
        page.get_by_label("Benutzername").fill("max")
        page.get_by_label("Passwort", exact=True).fill(PASSWORD)
        page.click("#login-submit")
        page.get_by_text("Angemeldet als max (Mitglied)").wait_for()
        page.get_by_role("link", name="Wissen", exact=True).wait_for()
    finally:
        context.close()


def test_the_account_page_switches_the_language(browser: Any, site: Site) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60000)
    try:
        sign_in_by_api(page, site, "bea")
        page.goto(f"{site.url}/account")
        page.get_by_role("heading", name="Your account").wait_for()
        page.get_by_label("Language").click()
        page.get_by_role("option", name="Deutsch").click()
        page.get_by_role("heading", name="Ihr Konto").wait_for()
        assert page.evaluate("document.documentElement.lang") == "de-DE"
        # The choice holds on every page, against the browser's English.
        page.goto(f"{site.url}/chat")
        page.get_by_role("button", name="Neue Unterhaltung").wait_for()
        page.goto(f"{site.url}/account")
        page.get_by_label("Sprache").click()
        page.get_by_role("option", name="Wie im Browser eingestellt").click()
        page.get_by_role("heading", name="Your account").wait_for()
        assert page.evaluate("document.documentElement.lang") == "en-US"
    finally:
        context.close()
