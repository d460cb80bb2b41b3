"""Enclave web UI (NiceGUI). Talks only to the appliance layer's public API.

Loaded by the appliance through the ``enclave.ui`` entry point: :func:`register`.
"""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from appliance import Appliance, __version__
from ui.account import add_account_pages
from ui.account_page import add_account_page
from ui.admin import add_admin_overview
from ui.admin_audit import add_admin_audit_page
from ui.admin_credits import add_admin_credits_page
from ui.admin_health import add_admin_health_page
from ui.admin_system import add_admin_system_page
from ui.admin_users import add_admin_user_pages
from ui.agents import add_agent_pages
from ui.chat import add_chat_pages
from ui.knowledge import add_knowledge_pages
from ui.pages import add_lifecycle_pages
from ui.wizard import add_wizard_pages


def add_pages(appliance: Appliance) -> None:
    """Register every page (each checks who may open it)."""
    add_lifecycle_pages(appliance)
    add_account_pages(appliance)
    add_wizard_pages(appliance)
    add_account_page(appliance)
    add_chat_pages(appliance)
    add_agent_pages(appliance)
    add_knowledge_pages(appliance)
    add_admin_overview(appliance)
    add_admin_user_pages(appliance)
    add_admin_audit_page(appliance)
    add_admin_system_page(appliance)
    add_admin_credits_page(appliance)
    add_admin_health_page(appliance)


def register(app: FastAPI, appliance: Appliance) -> None:
    """Mount the NiceGUI pages onto the appliance's FastAPI app."""
    add_pages(appliance)
    ui.run_with(
        app,
        title="Enclave",
        favicon="🔒",
        show_welcome_message=False,
        reconnect_timeout=10.0,
        language="en-US",
    )


__all__ = ["__version__", "add_pages", "register"]
