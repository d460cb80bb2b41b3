"""Enclave web UI (NiceGUI). Talks only to the appliance layer's public API.

Loaded by the appliance through the ``enclave.ui`` entry point: :func:`register`.
"""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from appliance import Appliance, __version__
from ui.account import add_account_pages
from ui.pages import add_lifecycle_pages


def register(app: FastAPI, appliance: Appliance) -> None:
    """Mount the NiceGUI pages onto the appliance's FastAPI app."""
    add_lifecycle_pages(appliance)
    add_account_pages(appliance)
    ui.run_with(
        app,
        title="Enclave",
        favicon="🔒",
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )


__all__ = ["__version__", "register"]
