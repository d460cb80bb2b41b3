"""/admin: the administration overview, and the links between the admin pages.

Administrators see every admin page; auditors see the audit log only (read-only).
"""

from __future__ import annotations

from fastapi import Request
from nicegui import ui

from appliance import Appliance
from ui.access import OVERSIGHT_ROLES, viewer
from ui.frame import frame, heading
from ui.i18n import N_, _, aria_label

# (label, path, roles, what it is for)
ADMIN_PAGES = (
    (
        N_("Users and groups"),
        "/admin/users",
        {"admin"},
        N_("Accounts, roles, groups and sign-in locks."),
    ),
    (
        N_("API keys"),
        "/admin/keys",
        {"admin"},
        N_("Every API key, its owner and scopes; revoke."),
    ),
    (
        N_("Audit log"),
        "/admin/audit",
        {"admin", "auditor"},
        N_("Who did what, filters, export, verify."),
    ),
    (
        N_("Models"),
        "/admin/models",
        {"admin"},
        N_("Model catalog, loaded models, queue, providers."),
    ),
    (
        N_("License and credits"),
        "/admin/credits",
        {"admin"},
        N_("License, balance and usage charts."),
    ),
    (
        N_("System health"),
        "/admin/health",
        {"admin"},
        N_("Doctor checks, sandbox, notifications."),
    ),
)


def admin_nav(role: str) -> None:
    """Links to the admin pages ``role`` may open."""
    with ui.element("nav").props(aria_label(_("Administration"))).classes("row gap-4"):
        for label, path, roles, _purpose in ADMIN_PAGES:
            if role in roles:
                ui.link(_(label), path)


def add_admin_overview(appliance: Appliance) -> None:
    """Register /admin."""

    @ui.page("/admin")
    async def admin_page(request: Request) -> None:
        person = await viewer(appliance, request, OVERSIGHT_ROLES, _("Administration"))
        if person is None:
            return
        with frame(_("Administration"), role=person.role, wide=True):
            heading(_("Administration"))
            for label, path, roles, purpose in ADMIN_PAGES:
                if person.role in roles:
                    with ui.row().classes("items-baseline gap-4"):
                        ui.link(_(label), path).classes("text-bold")
                        ui.label(_(purpose))
