"""The UI's message catalogs: every message in ui/ is in the template and translated into German
(not empty, not fuzzy, same placeholders), and the language negotiation picks what a person
asked for. The browser-side counterpart (no visible text outside the catalog) is
tests/e2e/test_i18n_pages.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from appliance.agents.templates import list_templates
from ui.agent_templates import CARD_TEXTS
from ui.i18n import (
    LANGUAGES,
    LOCALE_DIR,
    _,
    catalog,
    language_of_request,
    negotiate,
    ngettext,
    use_language,
)

UI = Path(__file__).resolve().parents[2] / "ui"
POT = LOCALE_DIR / "messages.pot"
TRANSLATED = sorted(set(LANGUAGES) - {"en"})
PLACEHOLDER = re.compile(r"\{(\w*)\}")

MessageId = str | tuple[str, ...]


def extracted() -> set[MessageId]:
    """The messages Babel extracts from ui/ now (what `make messages` would write)."""
    found: set[MessageId] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(UI), keywords=DEFAULT_KEYWORDS
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def load(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def ids(cat: Catalog) -> set[MessageId]:
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in cat if m.id}


def test_the_template_is_up_to_date() -> None:
    in_code, in_template = extracted(), ids(load(POT))
    assert len(in_code) > 300  # the extraction found the UI's messages at all
    assert in_code - in_template == set(), "new messages: run `make messages`"
    assert in_template - in_code == set(), "messages no longer used: run `make messages`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str) -> None:
    po = load(LOCALE_DIR / language / "LC_MESSAGES" / "enclave.po")
    assert ids(po) == ids(load(POT)), "catalog out of step with the template: `make messages`"
    problems = []
    for message in po:
        if not message.id:
            continue
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        sources = [message.id] if isinstance(message.id, str) else list(message.id)
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated or fuzzy: {message.id!r}")
            continue
        wanted = {p for s in sources for p in PLACEHOLDER.findall(s)}
        for string in strings:
            if set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"placeholders differ: {message.id!r} -> {string!r}")
    assert problems == []


def test_translations_are_used_and_formatted() -> None:
    with use_language("de"):
        assert _("Sign in") == "Anmelden"
        assert _("Deleted {file}.").format(file="a.pdf") == "a.pdf gelöscht."
        assert ngettext("{count} passage", "{count} passages", 1) == "{count} Passage"
        assert ngettext("{count} passage", "{count} passages", 3) == "{count} Passagen"
        assert _("A message nobody wrote") == "A message nobody wrote"
    with use_language("en"):
        assert _("Sign in") == "Sign in"
        assert ngettext("{count} passage", "{count} passages", 3) == "{count} passages"
    assert _("Sign in") == "Sign in"  # outside a page: English
    assert catalog("en") == {}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,de;q=0.5", "de"),
        ("fr-FR,fr;q=0.9", "en"),
        ("en;q=0.4, DE-at;q=0.6", "de"),
        ("de;q=0, en", "en"),
        ("de;q=oops, en", "en"),
        ("*", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_the_browser_language_is_negotiated(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_the_chosen_language_beats_the_browser() -> None:
    assert language_of_request({"enclave_lang": "de"}, "en-US") == "de"
    assert language_of_request({"enclave_lang": "en"}, "de-DE") == "en"
    assert language_of_request({"enclave_lang": "xx"}, "de-DE") == "de"
    assert language_of_request({}, None) == "en"


def test_every_template_card_is_marked_for_translation() -> None:
    texts = set(CARD_TEXTS)
    for template in list_templates():
        assert template["name"] in texts, template["name"]
        assert template["summary"] in texts, template["summary"]


def _calls_to_gettext(node: ast.AST) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id in {"_", "ngettext"}
    ]


@pytest.mark.parametrize("path", sorted(UI.glob("*.py")), ids=lambda p: p.name)
def test_nothing_is_translated_at_import_or_hidden_from_extraction(path: Path) -> None:
    """``_()`` at module level would translate once, into English, for everyone (mark such
    constants with ``N_`` and translate where drawn); ``_()`` inside an f-string is invisible to
    Babel's extractor on Python 3.11, so its message would never reach the catalog."""
    tree = ast.parse(path.read_text())
    module_level = [
        call.lineno
        for statement in tree.body
        if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for call in _calls_to_gettext(statement)
    ]
    for cls in (s for s in tree.body if isinstance(s, ast.ClassDef)):
        for statement in cls.body:
            if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                module_level += [call.lineno for call in _calls_to_gettext(statement)]
    in_fstrings = [
        call.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for call in _calls_to_gettext(node)
    ]
    assert module_level == [], f"{path.name}: _() at import time on lines {module_level}"
    assert in_fstrings == [], f"{path.name}: _() inside an f-string on lines {in_fstrings}"


@pytest.mark.parametrize("path", sorted(UI.glob("*.py")), ids=lambda p: p.name)
def test_no_function_shadows_the_translation_function(path: Path) -> None:
    """``for _ in ...`` or ``a, _ = ...`` inside a function makes ``_`` a local there, and every
    ``_("...")`` in that function then fails."""
    tree = ast.parse(path.read_text())
    bound = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)
    ]
    assert bound == [], f"{path.name}: `_` assigned on lines {bound}"
