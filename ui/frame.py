"""The page frame shared by every page: title, header with navigation, footer, an error line."""

from __future__ import annotations

from nicegui import ui

from appliance import __version__

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
    ("Chat", "/chat", {"admin", "builder", "member"}),
    ("Agents", "/agents", {"admin", "builder"}),
    ("Knowledge", "/knowledge", {"admin", "builder", "member"}),
    ("Admin", "/admin", {"admin", "auditor"}),
    ("Account", "/account", {"admin", "builder", "member", "auditor"}),
)


def frame(title: str, *, role: str | None = None, wide: bool = False) -> ui.column:
    """Set the page title, draw header (with the links ``role`` may follow) and footer, and
    return the main column (``wide`` for working pages such as chat and admin)."""
    ui.page_title(f"{title} · Enclave")
    # Darker than Quasar's default blue: white text on it meets WCAG AA contrast.
    ui.colors(primary=PRIMARY)
    ui.add_css(PAGE_CSS)
    with ui.header().classes("items-center gap-4"):
        ui.link("Enclave", "/").classes("text-h6 text-white no-underline")
        if role is not None:
            with ui.element("nav").props('aria-label="Main"').classes("row gap-4"):
                for label, path, roles in NAV:
                    if role in roles:
                        ui.link(label, path).classes("text-white")
        ui.space()
        theme_switch()
    with ui.footer().classes("text-caption").props("role=contentinfo"):
        ui.label(f"Enclave {__version__}")
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
        'flat round color=white aria-label="Switch between dark and light theme" id=theme-switch'
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
