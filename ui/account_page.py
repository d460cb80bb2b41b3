"""/account: your own API keys (create, see the token once, revoke) and your own usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.identity.api_keys import SCOPES
from ui.access import ALL_ROLES, Viewer, viewer
from ui.frame import error_line, frame, heading, subheading
from ui.offload import in_thread


def add_account_page(appliance: Appliance) -> None:
    """Register /account."""

    @ui.page("/account")
    async def account_page(request: Request) -> None:
        person = await viewer(appliance, request, ALL_ROLES, "Account")
        if person is None:
            return
        usage = await in_thread(own_usage, appliance, person.user.username)
        with frame("Account", role=person.role, wide=True):
            heading("Your account")
            ui.label(f"Signed in as {person.who.username} ({person.role}).")
            keys = KeysView(appliance, person)
            keys.draw()
            subheading("Your usage (last 30 days)")
            if usage is None:
                ui.label("You have not used any credits in the last 30 days.").props("id=own-usage")
            else:
                ui.label(
                    f"{usage['calls']} model calls, "
                    f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, "
                    f"{usage['credits']} credits."
                ).props("id=own-usage")
        await keys.refresh()


def own_usage(appliance: Appliance, username: str) -> dict[str, Any] | None:
    """This person's row of the usage by user, or None when they used nothing."""
    since = datetime.now(UTC) - timedelta(days=30)
    rows = appliance.services.metering.analytics.usage("user", since)
    return next((r for r in rows if r["user"] == username), None)


class KeysView:
    """The person's API keys and the form for a new one."""

    def __init__(self, appliance: Appliance, person: Viewer) -> None:
        self.services = appliance.services
        self.person = person

    def draw(self) -> None:
        """The section (filled by :meth:`refresh`)."""
        subheading("Your API keys")
        ui.label(
            "Programs use API keys to call Enclave as you. A key's token is shown once, when "
            "it is created; store it like a password."
        )
        self.error = error_line().props("id=key-error")
        self.listing = ui.column().classes("w-full gap-1").props("id=own-keys")
        with ui.row().classes("items-end gap-2"):
            self.name = ui.input("Key name")
            self.scopes = (
                ui.select(sorted(SCOPES), label="Scopes", value=["chat"], multiple=True)
                .classes("w-96")
                .props("use-chips")
            )
            ui.button("Create key", on_click=self.create).props("id=key-create")

    async def refresh(self) -> None:
        """Re-read the keys."""
        keys = await in_thread(self.services.api_keys.list_for_user, self.person.user.id)
        self.listing.clear()
        with self.listing:
            if not keys:
                ui.label("You have no API keys.")
            for key in keys:
                state = "revoked" if key.revoked_at else "active"
                with ui.row().classes("items-center gap-4 own-key"):
                    ui.label(key.name).classes("text-bold")
                    ui.label(", ".join(key.scope_list))
                    ui.label(state)
                    if not key.revoked_at:
                        ui.button("Revoke", on_click=lambda k=key.id: self.revoke(k)).props(
                            f'flat no-caps color=negative aria-label="Revoke {key.name}"'
                        )

    async def create(self) -> None:
        """Create a key and show its token once."""
        self.error.text = ""
        services, user = self.services, self.person.user
        try:
            _row, token = await in_thread(
                lambda: services.audited(
                    lambda: services.api_keys.create(
                        user.id, self.name.value or "", list(self.scopes.value or [])
                    ),
                    action="api_key.create",
                    actor=f"user:{user.id}",
                    target=lambda made: f"api_key:{made[0].id}",
                    details=lambda made: {"scopes": made[0].scope_list},
                )
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        self.name.value = ""
        with ui.dialog() as dialog, ui.card():
            subheading("Your new API key")
            ui.label("Copy it now: it will not be shown again.")
            ui.label(token).classes("font-mono").props("id=new-key-token")
            with ui.row():
                ui.button("Copy", on_click=lambda: ui.clipboard.write(token))
                ui.button("Done", on_click=dialog.close).props("id=new-key-done")
        dialog.open()
        await self.refresh()

    async def revoke(self, key_id: str) -> None:
        """Revoke one of the person's keys."""
        services, user = self.services, self.person.user
        try:
            await in_thread(
                lambda: services.audited(
                    lambda: services.api_keys.revoke(key_id, user),
                    action="api_key.revoke",
                    actor=f"user:{user.id}",
                    target=f"api_key:{key_id}",
                )
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        await self.refresh()
