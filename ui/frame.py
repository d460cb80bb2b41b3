"""The page frame shared by every page: title, header, footer, an error line."""

from __future__ import annotations

from nicegui import ui

from appliance import __version__


def frame(title: str) -> ui.column:
    """Set the page title, draw header and footer, and return the main column."""
    ui.page_title(f"{title} · Enclave")
    with ui.header().classes("items-center"):
        ui.label("Enclave").classes("text-h6")
    with ui.footer().classes("text-caption").props("role=contentinfo"):
        ui.label(f"Enclave {__version__}")
    return ui.column().classes("mx-auto w-full max-w-md q-pa-lg gap-4")


def heading(text: str) -> None:
    """The page's one level-1 heading."""
    ui.label(text).classes("text-h5").props("role=heading aria-level=1")


def error_line() -> ui.label:
    """An empty line that screen readers announce when an error is written into it."""
    return ui.label("").classes("text-negative").props("role=alert aria-live=assertive")
