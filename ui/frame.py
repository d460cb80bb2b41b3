"""The page frame shared by every page: title, header with navigation, footer, an error line."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from nicegui import context, ui
from nicegui.client import Client

from appliance import __version__
from ui.i18n import N_, _, apply_page_language, aria_label

PRIMARY = "#1f5fa8"
# NiceGUI's default link blue is too light on white (3.7:1); visible focus for keyboard users.
PAGE_CSS = """
.nicegui-link { color: #1d4ed8; }
.body--dark .nicegui-link { color: #93c5fd; }
.codehilite { color: #111; border-radius: 4px; padding: 2px 8px; overflow-x: auto; }
:focus-visible { outline: 3px solid #b45309; outline-offset: 2px; }
"""
# Navigation: (label, path, roles that see the link).
NAV = (
    (N_("Chat"), "/chat", {"admin", "builder", "member"}),
    (N_("Agents"), "/agents", {"admin", "builder"}),
    (N_("Knowledge"), "/knowledge", {"admin", "builder", "member"}),
    (N_("Admin"), "/admin", {"admin", "auditor"}),
    (N_("Account"), "/account", {"admin", "builder", "member", "auditor"}),
)
# What a page's header shows for the person signed in (the notification bell), registered by
# the page's access check before the frame is drawn: the frame itself knows no one.
_header_items: weakref.WeakKeyDictionary[Client, Callable[[], None]] = weakref.WeakKeyDictionary()


def add_to_header(draw: Callable[[], None]) -> None:
    """Have :func:`frame` call ``draw`` in this page's header (right, before the theme switch)."""
    _header_items[context.client] = draw


def frame(title: str, *, role: str | None = None, wide: bool = False) -> ui.column:
    """Set the page title (``title`` is already translated), draw header (with the links
    ``role`` may follow) and footer, and return the main column (``wide`` for working pages such
    as chat and admin)."""
    apply_page_language()
    ui.page_title(_("{title} · Enclave").format(title=title))
    # Darker than Quasar's default blue: white text on it meets WCAG AA contrast.
    ui.colors(primary=PRIMARY)
    ui.add_css(PAGE_CSS)
    with ui.header().classes("items-center gap-4"):
        ui.link(_("Enclave"), "/").classes("text-h6 text-white no-underline")
        if role is not None:
            with ui.element("nav").props(aria_label(_("Main"))).classes("row gap-4"):
                for label, path, roles in NAV:
                    if role in roles:
                        ui.link(_(label), path).classes("text-white")
        ui.space()
        if (draw := _header_items.get(context.client)) is not None:
            draw()
        theme_switch()
    # Not fixed: at 200 % zoom a fixed footer would cover a fifth of the window.
    with ui.footer(fixed=False).classes("text-caption").props("role=contentinfo"):
        ui.label(_("Enclave {version}").format(version=__version__))
    width = "max-w-screen-xl" if wide else "max-w-md"
    return ui.column().classes(f"mx-auto w-full {width} q-pa-lg gap-4")


THEME_KEY = "enclave-theme"


def theme_switch() -> None:
    """A dark/light switch; the browser remembers the choice (local storage)."""
    dark = ui.dark_mode()

    async def apply_saved() -> None:
        saved = await ui.run_javascript(f"return localStorage.getItem('{THEME_KEY}');")
        if saved in ("dark", "light"):
            dark.value = saved == "dark"

    def flip() -> None:
        dark.value = not dark.value
        choice = "dark" if dark.value else "light"
        ui.run_javascript(f"localStorage.setItem('{THEME_KEY}', '{choice}');")

    ui.button(icon="contrast", on_click=flip).props(
        "flat round color=white id=theme-switch "
        + aria_label(_("Switch between dark and light theme"))
    )
    ui.timer(0.05, apply_saved, once=True)


def heading(text: str) -> ui.label:
    """The page's one level-1 heading."""
    return ui.label(text).classes("text-h5").props("role=heading aria-level=1")


def subheading(text: str) -> None:
    """A level-2 heading inside a page."""
    ui.label(text).classes("text-h6").props("role=heading aria-level=2")


def error_line() -> ui.label:
    """An empty line that screen readers announce when an error is written into it."""
    return ui.label("").classes("text-negative").props("role=alert aria-live=assertive")
