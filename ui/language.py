"""The language selector of the account page.

The choice is kept in the browser (cookie :data:`ui.i18n.COOKIE`, readable by the server on the
next page request, so each page is built in the chosen language); choosing "same as the browser"
removes it and the browser's ``Accept-Language`` decides again.
"""

from __future__ import annotations

import json

from nicegui import context, ui
from nicegui.events import ValueChangeEventArguments

from ui.i18n import COOKIE, LANGUAGES, _

BROWSER = "browser"
# A year: the choice outlives the session; the cookie carries nothing but the language code.
MAX_AGE_S = 365 * 24 * 3600


def cookie_script(language: str) -> str:
    """JavaScript that stores ``language`` (or clears the choice for :data:`BROWSER`)."""
    if language == BROWSER:
        return f"document.cookie = {json.dumps(f'{COOKIE}=; path=/; max-age=0; SameSite=Lax')};"
    value = f"{COOKIE}={language}; path=/; max-age={MAX_AGE_S}; SameSite=Lax"
    return f"document.cookie = {json.dumps(value)};"


def language_picker() -> ui.select:
    """A select of the languages the UI speaks (each in its own name); a choice reloads the page
    in that language."""
    options = {BROWSER: _("Same as the browser"), **LANGUAGES}

    async def choose(event: ValueChangeEventArguments) -> None:
        value = event.value
        if value not in options:
            return
        await ui.run_javascript(cookie_script(value) + " return true;")
        ui.navigate.reload()

    return (
        ui.select(options, label=_("Language"), value=_chosen(), on_change=choose)
        .classes("w-64")
        .props("id=language-select")
    )


def _chosen() -> str:
    """The select's starting value: the explicit choice if there is one, else the browser's."""
    try:
        chosen = context.client.request.cookies.get(COOKIE)
    except RuntimeError:  # no page request behind this client
        chosen = None
    return chosen if chosen in LANGUAGES else BROWSER


__all__ = ["BROWSER", "cookie_script", "language_picker"]
