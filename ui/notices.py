"""The notification bell in every signed-in page's header: the number of unread notices
addressed to the person looking, and a menu listing them with "Mark read".

What a person sees is exactly what ``GET /api/v1/notifications`` returns to them (the same
service, :meth:`NotificationService.list_for`): their own notices (``user:<id>``: budgets
reached, including their groups' budgets), and the administrators' shared ones (license,
low balance) only when they are an administrator. Deny by default: every role but ``admin``
gets its own notices only. Messages are drawn as text, never as HTML.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from appliance import Appliance, EnclaveError
from ui.i18n import _, aria_label
from ui.offload import in_thread

# How many notices the menu lists (newest first), the most unread ones counted (more show as
# "99+"), and how often both are re-read.
SHOWN = 20
COUNTED = 100
REFRESH_SECONDS = 30.0
# The admins' shared notices are for this role only (as in the API: role admin).
ADMINISTRATOR = "admin"


class NoticeBell:
    """One person's bell: drawn into the page header by :func:`ui.frame.frame`."""

    def __init__(self, appliance: Appliance, user_id: int, role: str) -> None:
        self.appliance = appliance
        self.user_id = user_id
        self.is_admin = role == ADMINISTRATOR
        self.notices: list[dict[str, Any]] = []
        self.unread = 0
        self.shown = False

    def draw(self) -> None:
        """The bell button with its unread badge and menu (filled by :meth:`refresh`)."""
        with ui.button(icon="notifications", on_click=self.refresh).props(
            "flat round color=white id=notice-bell"
        ) as self.button:
            self.badge = ui.badge("", color="negative").props("floating id=notice-count")
            self.badge.classes("i18n-data")
            with ui.menu().props("id=notice-menu") as self.menu:
                self.listing = ui.column().classes("q-pa-md gap-2").style("max-width: 28rem")
        self._show()
        ui.timer(0.05, self.refresh, once=True)
        ui.timer(REFRESH_SECONDS, self.refresh)

    @property
    def service(self) -> Any:
        """The appliance's notification service (the API's too)."""
        return self.appliance.services.metering.notifications

    async def refresh(self) -> None:
        """Re-read the person's notices and redraw the badge and the menu."""
        try:
            unread = await in_thread(
                self.service.list_for, self.user_id, self.is_admin, True, COUNTED
            )
            notices = await in_thread(
                self.service.list_for, self.user_id, self.is_admin, False, SHOWN
            )
        except EnclaveError as exc:
            # E.g. sealed under the page: say so in the menu instead of a stale list.
            self.notices, self.unread = [], 0
            self._show(problem=exc.message)
            return
        if (notices, len(unread)) == (self.notices, self.unread) and self.shown:
            return  # nothing new: leave the open menu (and keyboard focus in it) alone
        self.notices, self.unread = notices, len(unread)
        self._show()

    async def mark_read(self, notice_id: int) -> None:
        """Mark one notice read (an admins' notice: for every admin, as in the API)."""
        try:
            await in_thread(self.service.mark_read, notice_id, self.user_id, self.is_admin)
        except EnclaveError as exc:
            self._show(problem=exc.message)
            return
        await self.refresh()

    def _show(self, problem: str = "") -> None:
        self.shown = not problem
        count = self.unread
        self.badge.text = str(count) if count < COUNTED else f"{COUNTED - 1}+"
        self.badge.set_visibility(count > 0)
        label = (
            _("Notifications: {count} unread").format(count=count) if count else _("Notifications")
        )
        self.button.props(aria_label(label))
        self.listing.clear()
        with self.listing:
            ui.label(_("Notifications")).classes("text-subtitle1").props(
                "role=heading aria-level=2"
            )
            if problem:
                ui.label(problem).classes("text-negative").props("role=alert")
            elif not self.notices:
                ui.label(_("No notifications.")).props("id=notice-empty")
            for notice in self.notices:
                self._row(notice)

    def _row(self, notice: dict[str, Any]) -> None:
        state = "notice-read" if notice["read"] else "notice-unread"
        with ui.column().classes(f"gap-0 w-full notice-item {state}"):
            ui.label(notice["created_at"][:16].replace("T", " ")).classes("text-caption i18n-data")
            # ui.label draws text: a message can never inject markup.
            message = ui.label(notice["message"]).classes("i18n-data notice-message")
            if not notice["read"]:
                message.classes("text-bold")
                ui.button(_("Mark read"), on_click=lambda n=notice["id"]: self.mark_read(n)).props(
                    f"flat dense no-caps id=notice-read-{notice['id']}"
                )
