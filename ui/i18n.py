"""Translation of the web UI: ``_("text")`` in the language of the person looking at the page.

Messages are English source strings; catalogs are gettext ``.po`` files under
``ui/locale/<lang>/LC_MESSAGES/enclave.po`` read with Babel once per process (no compiled ``.mo``
files to keep in step). The language of a page is, in order: a language set for the current
context (:func:`use_language`, used by tests and background work), the person's choice (cookie
:data:`COOKIE`, written by the account page's selector), the browser's ``Accept-Language``, English.
It is fixed per NiceGUI client when the page is built, so event handlers later in the same page
speak the same language as the page.

Strings with values are formatted after translation: ``_("Deleted {name}").format(name=...)``.
Module-level constants are marked with :func:`N_` (extracted, not translated) and translated
where they are drawn: ``_(label)``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from nicegui import context, ui
from nicegui.client import Client

DOMAIN = "enclave"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"
# Language code -> its own name (shown in the selector, never translated).
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}
# ``<html lang>`` per language.
HTML_LANG: dict[str, str] = {"en": "en-US", "de": "de-DE"}
COOKIE = "enclave_lang"

_override: ContextVar[str | None] = ContextVar("enclave_ui_language", default=None)
_by_client: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()

Messages = dict[str | tuple[str, str], str | tuple[str, ...]]


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (module-level constants)."""
    return message


@cache
def catalog(language: str) -> Messages:
    """The translated, non-fuzzy messages of ``language`` (empty for English, the source)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == DEFAULT or not path.is_file():
        return {}
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=language, domain=DOMAIN)
    messages: Messages = {}
    for message in parsed:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.string, str):
            if message.string:
                messages[str(message.id)] = message.string
        elif message.string and all(message.string):
            messages[(message.id[0], message.id[1])] = tuple(message.string)
    return messages


def negotiate(accept_language: str | None) -> str:
    """The first supported language in an ``Accept-Language`` header (by quality), else English."""
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.strip().lower()))
    for _quality, _index, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def supported(language: str | None) -> str | None:
    """``language`` if it is one the UI speaks, else None."""
    return language if language in LANGUAGES else None


def language_of_request(cookies: dict[str, str], accept_language: str | None) -> str:
    """The language for a page request: the person's choice (cookie), else the browser's."""
    return supported(cookies.get(COOKIE)) or negotiate(accept_language)


def _current_client() -> Client | None:
    try:
        return context.client
    except RuntimeError:
        return None


def current_language() -> str:
    """The language of the current context, client (page) or English."""
    forced = _override.get()
    if forced is not None:
        return forced
    client = _current_client()
    if client is None:
        return DEFAULT
    known = _by_client.get(client)
    if known is not None:
        return known
    language = DEFAULT
    try:
        request = client.request
    except RuntimeError:  # a client without a page request (NiceGUI's auto-index)
        request = None
    if request is not None:
        language = language_of_request(
            dict(request.cookies), request.headers.get("accept-language")
        )
    _by_client[client] = language
    return language


def set_client_language(language: str) -> None:
    """Make the current page speak ``language`` from now on (texts already drawn stay)."""
    client = _current_client()
    if client is not None and supported(language):
        _by_client[client] = language


def apply_page_language() -> str:
    """Give the current page the person's language: ``<html lang>`` and Quasar's own texts
    (NiceGUI reads both from the client's page, shared by all clients, hence the copy).
    Returns the language."""
    language = current_language()
    client = _current_client()
    if client is None:
        return language
    html_lang = HTML_LANG[language]
    if client.page.resolve_language() != html_lang:
        page = copy.copy(client.page)
        page.language = html_lang  # type: ignore[assignment]
        client.page = page
        if client.has_socket_connection:  # the page was already sent (slow page function)
            ui.run_javascript(f"document.documentElement.lang = {json.dumps(html_lang)};")
    return language


@contextlib.contextmanager
def use_language(language: str) -> Iterator[None]:
    """Translate into ``language`` inside the block, whatever the page or request."""
    token = _override.set(supported(language) or DEFAULT)
    try:
        yield
    finally:
        _override.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (the English text when there is no translation)."""
    translated = catalog(current_language()).get(message)
    return translated if isinstance(translated, str) else message


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for ``count`` in the current language (English rules as
    fallback; German has the same two forms)."""
    forms = catalog(current_language()).get((singular, plural))
    if isinstance(forms, tuple) and len(forms) >= 2:
        return forms[0] if count == 1 else forms[1]
    return singular if count == 1 else plural


def aria_label(text: str) -> str:
    """A NiceGUI ``props`` string setting ``aria-label`` to ``text`` (translated text or names
    may hold quotes, which would end the prop's value)."""
    return 'aria-label="{}"'.format(text.replace('"', "'"))


gettext = _

__all__ = [
    "COOKIE",
    "HTML_LANG",
    "LANGUAGES",
    "N_",
    "_",
    "apply_page_language",
    "aria_label",
    "catalog",
    "current_language",
    "gettext",
    "language_of_request",
    "negotiate",
    "ngettext",
    "set_client_language",
    "use_language",
]
