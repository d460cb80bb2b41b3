"""/account: your language, your own API keys (create, see the token once, revoke) and your own
usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.identity.api_keys import SCOPES
from ui.access import ALL_ROLES, Viewer, role_name, viewer
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _, aria_label
from ui.language import language_picker
from ui.offload import in_thread


def add_account_page(appliance: Appliance) -> None:
    """Register /account."""

    @ui.page("/account")
    async def account_page(request: Request) -> None:
        person = await viewer(appliance, request, ALL_ROLES, _("Account"))
        if person is None:
            return
        usage = await in_thread(own_usage, appliance, person.user.username)
        with frame(_("Account"), role=person.role, wide=True):
            heading(_("Your account"))
            ui.label(
                _("Signed in as {user} ({role}).").format(
                    user=person.who.username, role=role_name(person.role)
                )
            )
            language_picker()
            keys = KeysView(appliance, person)
            keys.draw()
            subheading(_("Your usage (last 30 days)"))
            if usage is None:
                ui.label(_("You have not used any credits in the last 30 days.")).props(
                    "id=own-usage"
                )
            else:
                ui.label(
                    _("{calls} model calls, {tokens} tokens, {credits} credits.").format(
                        calls=usage["calls"],
                        tokens=usage["prompt_tokens"] + usage["completion_tokens"],
                        credits=usage["credits"],
                    )
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
        subheading(_("Your API keys"))
        ui.label(
            _(
                "Programs use API keys to call Enclave as you. A key's token is shown once, when "
                "it is created; store it like a password."
            )
        )
        self.error = error_line().props("id=key-error")
        self.listing = ui.column().classes("w-full gap-1").props("id=own-keys")
        with ui.row().classes("items-end gap-2"):
            self.name = ui.input(_("Key name"))
            self.scopes = (
                ui.select(sorted(SCOPES), label=_("Scopes"), value=["chat"], multiple=True)
                .classes("w-96")
                .props("use-chips")
            )
            ui.button(_("Create key"), on_click=self.create).props("id=key-create")

    async def refresh(self) -> None:
        """Re-read the keys."""
        keys = await in_thread(self.services.api_keys.list_for_user, self.person.user.id)
        self.listing.clear()
        with self.listing:
            if not keys:
                ui.label(_("You have no API keys."))
            for key in keys:
                state = _("revoked") if key.revoked_at else _("active")
                with ui.row().classes("items-center gap-4 own-key"):
                    ui.label(key.name).classes("text-bold i18n-data")
                    ui.label(", ".join(key.scope_list)).classes("i18n-data")
                    ui.label(state)
                    if not key.revoked_at:
                        ui.button(_("Revoke"), on_click=lambda k=key.id: self.revoke(k)).props(
                            "flat no-caps color=negative "
                            + aria_label(_("Revoke {name}").format(name=key.name))
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
            subheading(_("Your new API key"))
            ui.label(_("Copy it now: it will not be shown again."))
            ui.label(token).classes("font-mono i18n-data").props("id=new-key-token")
            with ui.row():
                ui.button(_("Copy"), on_click=lambda: ui.clipboard.write(token))
                ui.button(_("Done"), on_click=dialog.close).props("id=new-key-done")
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
