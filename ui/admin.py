"""/admin: the administration overview, and the links between the admin pages.

Administrators see every admin page; auditors see the audit log only (read-only).
"""

from __future__ import annotations

from fastapi import Request
from nicegui import ui

from appliance import Appliance
from ui.access import OVERSIGHT_ROLES, viewer
from ui.frame import frame, heading

# (label, path, roles, what it is for)
ADMIN_PAGES = (
    ("Users and groups", "/admin/users", {"admin"}, "Accounts, roles, groups and sign-in locks."),
    ("API keys", "/admin/keys", {"admin"}, "Every API key, its owner and scopes; revoke."),
    ("Audit log", "/admin/audit", {"admin", "auditor"}, "Who did what, filters, export, verify."),
    ("Models", "/admin/models", {"admin"}, "Model catalog, loaded models, queue, providers."),
    ("License and credits", "/admin/credits", {"admin"}, "License, balance and usage charts."),
    ("System health", "/admin/health", {"admin"}, "Doctor checks, sandbox, notifications."),
)


def admin_nav(role: str) -> None:
    """Links to the admin pages ``role`` may open."""
    with ui.element("nav").props('aria-label="Administration"').classes("row gap-4"):
        for label, path, roles, _ in ADMIN_PAGES:
            if role in roles:
                ui.link(label, path)


def add_admin_overview(appliance: Appliance) -> None:
    """Register /admin."""

    @ui.page("/admin")
    async def admin_page(request: Request) -> None:
        person = await viewer(appliance, request, OVERSIGHT_ROLES, "Administration")
        if person is None:
            return
        with frame("Administration", role=person.role, wide=True):
            heading("Administration")
            for label, path, roles, purpose in ADMIN_PAGES:
                if person.role in roles:
                    with ui.row().classes("items-baseline gap-4"):
                        ui.link(label, path).classes("text-bold")
                        ui.label(purpose)
