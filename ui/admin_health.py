"""/admin/health: system health (the `enclave doctor` checks that make sense while running:
home, vault, database, disk, sandbox backends, model files) and the administrators'
notifications. Administrators only."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.doctor import (
    Check,
    Status,
    check_disk,
    check_home,
    check_models,
    check_sandbox,
    check_vault,
)
from ui.access import ADMIN_ROLES, Viewer, viewer
from ui.admin import admin_nav
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import N_, _
from ui.offload import in_thread

SHOWN = {Status.OK: N_("ok"), Status.WARN: N_("warning"), Status.FAIL: N_("FAILING")}


def health_checks(appliance: Appliance) -> list[Check]:
    """The doctor's checks for a running, unsealed appliance (the database is open, so its
    readiness stands in for the offline integrity check)."""
    settings = appliance.settings
    ready = appliance.readiness()["checks"]
    database = [
        Check("database", Status.OK if ready["database"] else Status.FAIL, "open and answering"),
        Check(
            "schema",
            Status.OK if ready["migrations"] else Status.FAIL,
            "migrations current" if ready["migrations"] else "migrations pending",
        ),
    ]
    return [
        *check_home(appliance.home),
        *check_vault(appliance.home, settings.unseal_keyfile),
        *database,
        *check_disk(appliance.home, settings.min_free_disk_mb),
        *check_sandbox(),
        *check_models(appliance.home),
    ]


def add_admin_health_page(appliance: Appliance) -> None:
    """Register /admin/health."""

    @ui.page("/admin/health")
    async def health_page(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("System health"))
        if person is None:
            return
        with frame(_("System health"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("System health"))
            summary = ui.label(_("Checking…")).props("id=health-summary role=status")
            table = ui.table(
                columns=[
                    {"name": "name", "label": _("Check"), "field": "name", "align": "left"},
                    {"name": "status", "label": _("Status"), "field": "status", "align": "left"},
                    {"name": "detail", "label": _("Detail"), "field": "detail", "align": "left"},
                ],
                rows=[],
                row_key="name",
            ).props("flat bordered wrap-cells id=health-checks")
            table.classes("w-full")

            async def run_checks() -> None:
                summary.text = _("Checking…")
                checks = await in_thread(health_checks, appliance)
                table.rows = [
                    {"name": c.name, "status": _(SHOWN[c.status]), "detail": c.detail}
                    for c in checks
                ]
                table.update()
                failing = [c.name for c in checks if c.status is Status.FAIL]
                summary.text = (
                    _("{count} failing: {names}. Fix these first.").format(
                        count=len(failing), names=", ".join(failing)
                    )
                    if failing
                    else _("All {count} checks pass or only warn.").format(count=len(checks))
                )

            ui.button(_("Check again"), icon="refresh", on_click=run_checks).props("outline")
            notices = NoticesView(appliance, person)
            notices.draw()
        await run_checks()
        await notices.refresh()


class NoticesView:
    """Notifications for administrators (license expiry, low credits, budgets)."""

    def __init__(self, appliance: Appliance, person: Viewer) -> None:
        self.notifications = appliance.services.metering.notifications
        self.person = person

    def draw(self) -> None:
        """The section (filled by :meth:`refresh`)."""
        subheading(_("Notifications"))
        self.error = error_line()
        self.listing = ui.column().classes("w-full gap-1").props("id=notifications")

    async def refresh(self) -> None:
        """Re-read the notices."""
        notices: list[dict[str, Any]] = await in_thread(
            self.notifications.list_for, self.person.user.id, True
        )
        self.listing.clear()
        with self.listing:
            if not notices:
                ui.label(_("No notifications."))
            for notice in notices:
                with ui.row().classes("items-center gap-4 notice"):
                    ui.label(notice["created_at"][:16].replace("T", " ")).classes("i18n-data")
                    ui.label(notice["message"]).classes(
                        "i18n-data" if notice["read"] else "i18n-data text-bold"
                    )
                    if not notice["read"]:
                        ui.button(
                            _("Mark read"), on_click=lambda n=notice["id"]: self.mark_read(n)
                        ).props("flat dense no-caps")

    async def mark_read(self, notice_id: int) -> None:
        """Mark one notice as read."""
        try:
            await in_thread(self.notifications.mark_read, notice_id, self.person.user.id, True)
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        await self.refresh()
