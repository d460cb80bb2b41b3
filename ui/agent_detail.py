"""/agents/{id}: edit an agent (a new version per save), its history with diff and one-click
rollback, export, and sharing with users and groups."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.agents.service import AgentInfo, VersionInfo
from appliance.identity.models import User
from ui.access import BUILDER_ROLES, Viewer, viewer
from ui.agent_form import AgentForm, Choices
from ui.agent_network import network_section
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _, aria_label
from ui.offload import in_thread

ChoiceLoader = Callable[[Appliance, User], Choices]


def add_agent_detail_page(appliance: Appliance, load_choices: ChoiceLoader) -> None:
    """Register /agents/{agent_id}."""

    @ui.page("/agents/{agent_id}")
    async def agent_page(request: Request, agent_id: str) -> None:
        person = await viewer(appliance, request, BUILDER_ROLES, _("Agent"))
        if person is None:
            return
        agents = appliance.services.agents
        try:
            info = await in_thread(agents.get, person.user, agent_id)
            versions = await in_thread(agents.versions, person.user, agent_id)
        except EnclaveError:
            with frame(_("Agent"), role=person.role):
                heading(_("Agent not found"))
                ui.label(_("This agent does not exist or is not shared with you.")).props(
                    "role=alert"
                )
                ui.link(_("All agents"), "/agents")
            return
        choices = await in_thread(load_choices, appliance, person.user)
        with frame(info.name, role=person.role, wide=True):
            AgentDetail(appliance, person, info, versions).draw(choices)


class AgentDetail:
    """The sections of one agent's page."""

    def __init__(
        self, appliance: Appliance, person: Viewer, info: AgentInfo, versions: list[VersionInfo]
    ) -> None:
        self.appliance = appliance
        self.agents = appliance.services.agents
        self.person = person
        self.info = info
        self.versions = versions
        self.editable = info.level == "edit"

    def reload(self) -> None:
        """Show the agent as saved now."""
        ui.navigate.to(f"/agents/{self.info.id}")

    def draw(self, choices: Choices) -> None:
        """The whole page."""
        info = self.info
        heading(info.name).classes("i18n-data")
        ui.label(
            (
                _("Active version {active} (latest {latest}). You can edit this agent.")
                if self.editable
                else _("Active version {active} (latest {latest}). You can use but not edit it.")
            ).format(active=info.active_version, latest=info.latest_version)
        ).props("id=agent-version")
        with ui.row().classes("gap-2"):
            ui.button(
                _("Try in chat"),
                icon="chat",
                on_click=lambda: ui.navigate.to(f"/chat?agent={info.id}"),
            ).props("outline")
            ui.button(_("Export"), icon="download", on_click=self.export).props("outline id=export")
        self.form = AgentForm(info.definition, choices, self.editable)
        self.error = error_line().props("id=agent-error")
        if self.editable:
            with ui.row().classes("items-end gap-2 w-full"):
                self.note = ui.input(_("Change note (optional)")).classes("grow")
                ui.button(_("Save new version"), on_click=self.save).props("id=agent-save")
        self.history()
        with ui.column().classes("w-full gap-2").props("id=code-tool-network"):
            network_section(self.appliance, self.person, info)
        if self.editable:
            with ui.column().classes("w-full gap-2").props("id=sharing"):
                self._sharing(*self.load_sharing())

    async def save(self) -> None:
        """Save the form as a new version."""
        self.error.text = ""
        try:
            await in_thread(
                self.agents.update,
                self.person.user,
                self.info.id,
                self.form.document(),
                self.note.value or None,
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        ui.notify(_("Saved as a new version."))
        self.reload()

    def export(self) -> None:
        """Download the active version as a portable JSON file."""
        document = self.agents.export(self.person.user, self.info.id)
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", self.info.name).strip("-") or "agent"
        ui.download.content(
            json.dumps(document, indent=2), f"{name}.agent.json", "application/json"
        )

    # --- history -----------------------------------------------------------------------------

    def history(self) -> None:
        """Every version, newest first, with compare and rollback."""
        subheading(_("Version history"))
        with ui.column().classes("w-full gap-1").props("id=version-history"):
            for version in reversed(self.versions):
                active = version.version == self.info.active_version
                with ui.row().classes("w-full items-center gap-4 version-row"):
                    ui.label(_("Version {number}").format(number=version.version)).classes(
                        "text-bold"
                    )
                    ui.label(version.created_at.strftime("%Y-%m-%d %H:%M UTC")).classes("i18n-data")
                    if version.change_note:
                        ui.label(version.change_note).classes("grow i18n-data")
                    else:
                        ui.label(_("No note.")).classes("grow")
                    if active:
                        ui.badge(_("active"))
                        continue
                    ui.button(
                        _("Compare"), on_click=lambda v=version.version: self.compare(v)
                    ).props(
                        "flat no-caps "
                        + aria_label(_("Compare version {number}").format(number=version.version))
                    )
                    if self.editable:
                        ui.button(
                            _("Roll back to version {number}").format(number=version.version),
                            on_click=lambda v=version.version: self.rollback(v),
                        ).props("outline no-caps")

    async def compare(self, old: int) -> None:
        """Show what changed from version ``old`` to the active version."""
        try:
            result = await in_thread(
                self.agents.diff, self.person.user, self.info.id, old, self.info.active_version
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        with ui.dialog() as dialog, ui.card().classes("w-[48rem]"):
            subheading(
                _("Version {old} → version {new}").format(old=old, new=self.info.active_version)
            )
            changes = result["changes"]
            if not changes:
                ui.label(_("The two versions are the same."))
            rows = [
                {"field": c["field"], "old": _show(c["old"]), "new": _show(c["new"])}
                for c in changes
            ]
            ui.table(
                columns=[
                    {"name": "field", "label": _("Field"), "field": "field", "align": "left"},
                    {
                        "name": "old",
                        "label": _("Version {number}").format(number=old),
                        "field": "old",
                        "align": "left",
                    },
                    {
                        "name": "new",
                        "label": _("Version {number}").format(number=self.info.active_version),
                        "field": "new",
                        "align": "left",
                    },
                ],
                rows=rows,
            ).props("flat bordered wrap-cells id=version-diff").classes("w-full")
            ui.button(_("Close"), on_click=dialog.close)
        dialog.open()

    async def rollback(self, version: int) -> None:
        """Make a new version equal to ``version`` (history is kept)."""
        try:
            await in_thread(self.agents.rollback, self.person.user, self.info.id, version)
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        ui.notify(
            _("Rolled back: the active version now equals version {number}.").format(number=version)
        )
        self.reload()

    # --- sharing -----------------------------------------------------------------------------

    def load_sharing(self) -> tuple[list[dict[str, Any]], dict[int, str], dict[int, str]]:
        """The agent's grants and the users and groups it could be shared with."""
        services = self.appliance.services
        grants = self.agents.shares(self.person.user, self.info.id)
        users = {u.id: u.username for u in services.users.list_users() if not u.disabled}
        groups = {g.id: g.name for g in services.groups.list_groups()}
        return grants, users, groups

    def _sharing(
        self, grants: list[dict[str, Any]], users: dict[int, str], groups: dict[int, str]
    ) -> None:
        subheading(_("Sharing"))
        for grant in grants:
            if grant["user_id"] == self.info.owner_id:
                continue
            who = (
                _("user {name}").format(name=users.get(grant["user_id"], grant["user_id"]))
                if grant["user_id"] is not None
                else _("group {name}").format(name=groups.get(grant["group_id"], grant["group_id"]))
            )
            with ui.row().classes("items-center gap-2 share-row"):
                can = _("can edit") if grant["level"] == "edit" else _("can use")
                ui.label(_("{who}: {access}").format(who=who, access=can))
                ui.button(
                    _("Remove"),
                    on_click=lambda g=grant: self.unshare(g["user_id"], g["group_id"]),
                ).props(
                    "flat dense no-caps " + aria_label(_("Stop sharing with {who}").format(who=who))
                )
        options = {
            f"user:{i}": _("User {name}").format(name=n)
            for i, n in users.items()
            if i != self.info.owner_id
        }
        options.update({f"group:{i}": _("Group {name}").format(name=n) for i, n in groups.items()})
        with ui.row().classes("items-end gap-2"):
            target = ui.select(options, label=_("Share with"), with_input=True).classes("w-64")
            level = ui.select(
                {"use": _("can use"), "edit": _("can edit")}, label=_("Access"), value="use"
            )
            ui.button(
                _("Share"), on_click=lambda: self.share(str(target.value or ""), str(level.value))
            ).props("id=share-submit")

    async def share(self, target: str, level: str) -> None:
        """Grant ``level`` to a ``user:ID`` or ``group:ID``."""
        kind, _sep, raw = target.partition(":")
        if not raw:
            self.error.text = _("Choose a user or group to share with.")
            return
        who = {"user_id": int(raw)} if kind == "user" else {"group_id": int(raw)}
        try:
            await in_thread(lambda: self.agents.share(self.person.user, self.info.id, level, **who))
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        self.reload()

    async def unshare(self, user_id: int | None, group_id: int | None) -> None:
        """Remove one grant."""
        try:
            await in_thread(
                lambda: self.agents.unshare(
                    self.person.user, self.info.id, user_id=user_id, group_id=group_id
                )
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        self.reload()


def _show(value: Any) -> str:
    if value is None:
        return _("(not set)")
    return value if isinstance(value, str) else json.dumps(value)
