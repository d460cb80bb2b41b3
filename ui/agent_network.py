"""The "Code-tool network" section of /agents/{id}: which ``host:port`` destinations the
agent's python and shell tools may reach. Everyone who sees the page sees the list; only an
administrator can change it (appliance.agents.tool_network, audited)."""

from __future__ import annotations

from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.agents.service import AgentInfo
from ui.access import ADMIN_ROLES, Viewer
from ui.frame import error_line, subheading
from ui.i18n import _
from ui.offload import in_thread


def network_section(appliance: Appliance, person: Viewer, info: AgentInfo) -> None:
    """Draw the section; on a save the page reloads."""
    subheading(_("Code-tool network"))
    entries = list(info.tool_network_allowlist)
    if entries:
        text = _("The python and shell tools of this agent may connect to: {entries}").format(
            entries=", ".join(entries)
        )
    else:
        text = _("The python and shell tools of this agent have no network.")
    ui.label(text).props("id=tool-network")
    if person.role not in ADMIN_ROLES:
        ui.label(_("Only an administrator can change this.")).classes("text-caption")
        return
    error = error_line().props("id=tool-network-error")
    with ui.row().classes("items-end gap-2 w-full"):
        field = (
            ui.input(
                _("Allowed destinations (host:port, comma-separated)"), value=", ".join(entries)
            )
            .classes("grow")
            .props("id=tool-network-input")
        )

        async def save() -> None:
            error.text = ""
            wanted = [e.strip() for e in str(field.value or "").split(",") if e.strip()]
            try:
                await in_thread(
                    appliance.services.agents.tool_network.set, person.user, info.id, wanted
                )
            except EnclaveError as exc:
                error.text = exc.message
                return
            ui.notify(_("Network access saved."))
            ui.navigate.to(f"/agents/{info.id}")

        ui.button(_("Save network access"), on_click=save).props("id=tool-network-save")
