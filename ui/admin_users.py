"""/admin/users (accounts, roles, groups) and /admin/keys (every API key): administrators only.

Every change runs through ``Services.audited`` with the administrator as actor, exactly as the
JSON API does, so the audit log reads the same whichever way a change was made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError, Role
from ui.access import ADMIN_ROLES, Viewer, role_name, viewer
from ui.admin import admin_nav
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _, aria_label
from ui.offload import in_thread


def role_options() -> dict[str, str]:
    """The roles for a select, named in the page's language."""
    return {r.value: role_name(r.value).capitalize() for r in Role}


def add_admin_user_pages(appliance: Appliance) -> None:
    """Register /admin/users and /admin/keys."""

    @ui.page("/admin/users")
    async def users_page(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("Users and groups"))
        if person is None:
            return
        with frame(_("Users and groups"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("Users and groups"))
            UsersView(appliance, person).draw()

    @ui.page("/admin/keys")
    async def keys_page(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("API keys"))
        if person is None:
            return
        services = appliance.services
        keys = await in_thread(services.api_keys.list_all)
        names = {u.id: u.username for u in await in_thread(services.users.list_users)}
        with frame(_("API keys"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("API keys"))
            error = error_line()
            if not keys:
                ui.label(_("No API keys yet. People create their own keys through the API."))
            for key in keys:
                state = _("revoked") if key.revoked_at else _("active")
                with ui.row().classes("w-full items-center gap-4 key-row"):
                    ui.label(key.name).classes("text-bold i18n-data")
                    ui.label(_("owner {user}").format(user=names.get(key.user_id, key.user_id)))
                    if key.scope_list:
                        ui.label(", ".join(key.scope_list)).classes("i18n-data")
                    else:
                        ui.label(_("no scopes"))
                    ui.label(state)
                    if not key.revoked_at:

                        async def revoke(key_id: str = key.id) -> None:
                            try:
                                await in_thread(
                                    lambda: services.audited(
                                        lambda: services.api_keys.revoke(key_id, person.user),
                                        action="api_key.revoke",
                                        actor=f"user:{person.user.id}",
                                        target=f"api_key:{key_id}",
                                    )
                                )
                            except EnclaveError as exc:
                                error.text = exc.message
                                return
                            ui.navigate.reload()

                        ui.button(_("Revoke"), on_click=revoke).props(
                            "flat no-caps color=negative "
                            + aria_label(_("Revoke key {name}").format(name=key.name))
                        )


class UsersView:
    """The accounts table, the new-account form and the groups."""

    def __init__(self, appliance: Appliance, person: Viewer) -> None:
        self.services = appliance.services
        self.person = person
        self.actor = f"user:{person.user.id}"

    def draw(self) -> None:
        """Both sections."""
        self.error = error_line().props("id=admin-error")
        subheading(_("Accounts"))
        self.accounts = ui.column().classes("w-full gap-1").props("id=user-list")
        self._new_user_form()
        subheading(_("Groups"))
        self.groups = ui.column().classes("w-full gap-2").props("id=group-list")
        self._new_group_form()
        ui.timer(0, self.refresh, once=True)

    async def refresh(self) -> None:
        """Re-read accounts and groups."""
        services = self.services
        users = await in_thread(services.users.list_users)
        groups = await in_thread(services.groups.list_groups)
        members = {g.id: await in_thread(services.groups.list_members, g.id) for g in groups}
        self.accounts.clear()
        with self.accounts:
            for user in users:
                self._user_row(user)
        self.groups.clear()
        with self.groups:
            if not groups:
                ui.label(_("No groups yet."))
            names = {u.id: u.username for u in users}
            for group in groups:
                with ui.row().classes("items-center gap-2 group-row"):
                    ui.label(group.name).classes("text-bold i18n-data")
                    ui.label(
                        _("members: {names}").format(
                            names=", ".join(u.username for u in members[group.id]) or _("none")
                        )
                    )
                    pick = ui.select(
                        names, label=_("Add to {group}").format(group=group.name)
                    ).classes("w-48")
                    ui.button(
                        _("Add"), on_click=lambda g=group.id, p=pick: self._add_member(g, p.value)
                    ).props(
                        "flat no-caps "
                        + aria_label(_("Add the chosen user to {group}").format(group=group.name))
                    )

    async def _add_member(self, group_id: int, user_id: Any) -> None:
        if user_id is None:
            self.error.text = _("Choose the user to add first.")
            return
        await self._change(
            lambda: self.services.groups.add_member(group_id, int(user_id)),
            "group.member.add",
            f"group:{group_id}",
            {"user_id": int(user_id)},
        )

    def _user_row(self, user: Any) -> None:
        with ui.row().classes("w-full items-center gap-4 user-row"):
            ui.label(user.username).classes("text-bold w-40 i18n-data")
            role = ui.select(
                role_options(),
                value=user.role,
                label=_("Role of {user}").format(user=user.username),
            )
            role.classes("w-40")
            role.on_value_change(
                lambda e, uid=user.id: self._change(
                    lambda: self.services.users.set_role(uid, str(e.value)),
                    "user.update",
                    f"user:{uid}",
                    {"role": str(e.value)},
                )
            )
            ui.label(_("disabled") if user.disabled else _("active")).classes("w-20")
            flip = not user.disabled

            async def toggle(uid: int = user.id, disabled: bool = flip) -> None:
                def change() -> None:
                    self.services.users.set_disabled(uid, disabled)
                    if disabled:
                        self.services.tokens.revoke_user_sessions(uid, "disabled")

                await self._change(change, "user.update", f"user:{uid}", {"disabled": disabled})

            if user.id == self.person.user.id:
                role.disable()  # an administrator cannot lock themselves out
            else:
                ui.button(_("Disable") if flip else _("Enable"), on_click=toggle).props(
                    "outline no-caps "
                    + aria_label(
                        (_("Disable {user}") if flip else _("Enable {user}")).format(
                            user=user.username
                        )
                    )
                )

    async def _change(
        self, fn: Callable[[], Any], action: str, target: str, details: Any = None
    ) -> None:
        self.error.text = ""
        try:
            await in_thread(
                lambda: self.services.audited(
                    fn, action=action, actor=self.actor, target=target, details=details
                )
            )
        except EnclaveError as exc:
            self.error.text = exc.message
        await self.refresh()

    def _new_user_form(self) -> None:
        with ui.row().classes("items-end gap-2"):
            name = ui.input(_("New user name"))
            password = ui.input(_("Initial password"), password=True)
            role = ui.select(role_options(), value="member", label=_("New user's role")).classes(
                "w-40"
            )

            async def create() -> None:
                self.error.text = ""
                try:
                    await in_thread(
                        lambda: self.services.audited(
                            lambda: self.services.users.create_user(
                                name.value or "", password.value or "", str(role.value)
                            ),
                            action="user.create",
                            actor=self.actor,
                            target=lambda u: f"user:{u.id}",
                            details={"role": str(role.value)},
                        )
                    )
                except EnclaveError as exc:
                    self.error.text = exc.message
                    return
                name.value = password.value = ""
                ui.notify(_("Account created."))
                await self.refresh()

            ui.button(_("Create account"), on_click=create).props("id=create-user")

    def _new_group_form(self) -> None:
        with ui.row().classes("items-end gap-2"):
            name = ui.input(_("New group name"))

            async def create() -> None:
                self.error.text = ""
                try:
                    await in_thread(
                        lambda: self.services.audited(
                            lambda: self.services.groups.create_group(name.value or ""),
                            action="group.create",
                            actor=self.actor,
                            target=lambda g: f"group:{g.id}",
                        )
                    )
                except EnclaveError as exc:
                    self.error.text = exc.message
                    return
                name.value = ""
                await self.refresh()

            ui.button(_("Create group"), on_click=create).props("id=create-group")
