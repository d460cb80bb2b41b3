"""/admin/models: the model catalog and what is loaded (queue depth), remote provider endpoints
(capability probe, circuit state) and MCP servers. Administrators only."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.model_files import catalog_for, resolve_model_file
from ui.access import ADMIN_ROLES, Viewer, viewer
from ui.admin import admin_nav
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _, aria_label, ngettext
from ui.offload import in_thread
from ui.session import api_call


def _left(name: str, label: str) -> dict[str, str]:
    """A left-aligned column (``label`` is already translated)."""
    return {"name": name, "label": label, "field": name, "align": "left"}


def catalog_rows(appliance: Appliance) -> list[dict[str, Any]]:
    """Every catalog model with whether its file is present."""
    catalog = catalog_for(appliance.home)
    rows = []
    for model_id, entry in catalog.entries.items():
        try:
            resolve_model_file(entry, appliance.home)
            present = _("present")
        except EnclaveError as exc:
            present = _("missing: {reason}").format(reason=exc.message)
        rows.append(
            {
                "id": model_id,
                "name": (
                    _("{model} (default)").format(model=entry.display_name)
                    if model_id == catalog.default
                    else entry.display_name
                ),
                "size": _("{size} MiB").format(size=f"{entry.size_bytes / 2**20:.0f}"),
                "context": entry.context_length,
                "licence": entry.licence,
                "file": present,
            }
        )
    return rows


def add_admin_system_page(appliance: Appliance) -> None:
    """Register /admin/models."""

    @ui.page("/admin/models")
    async def models_page(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("Models"))
        if person is None:
            return
        runs = appliance.runs
        runs.hub.start()
        rows = await in_thread(catalog_rows, appliance)
        status = await runs.hub.status()
        endpoints = await in_thread(appliance.services.providers.list_endpoints)
        servers = await in_thread(runs.mcp.list_servers)
        with frame(_("Models"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("Models and providers"))
            subheading(_("Model catalog"))
            ui.table(
                columns=[
                    _left("name", _("Model")),
                    _left("id", _("Id")),
                    _left("size", _("Size")),
                    _left("context", _("Context (tokens)")),
                    _left("licence", _("Licence")),
                    _left("file", _("File")),
                ],
                rows=rows,
                row_key="id",
            ).props("flat bordered wrap-cells id=model-catalog").classes("w-full")
            subheading(_("Loaded models and queue"))
            if not status:
                ui.label(
                    _("No local model is loaded yet; the first chat loads one (a few seconds).")
                ).props("id=hub-status")
            else:
                ui.table(
                    columns=[
                        _left("model", _("Model")),
                        _left("loaded", _("Loaded")),
                        _left("waiting", _("Waiting")),
                        _left("in_flight", _("Generating")),
                        _left("average", _("Average answer (s)")),
                    ],
                    rows=[
                        {
                            "model": s["model"],
                            "loaded": _("yes") if s["loaded"] else _("no (unloaded when idle)"),
                            "waiting": s["queue"].get("waiting", 0),
                            "in_flight": s["queue"].get("in_flight", 0),
                            "average": s["queue"].get("average_generation_s", 0),
                        }
                        for s in status
                    ],
                    row_key="model",
                ).props("flat bordered id=hub-status").classes("w-full")
            subheading(_("Remote providers"))
            ProvidersView(person, endpoints).draw()
            subheading(_("MCP servers"))
            if not servers:
                ui.label(_("No MCP servers are registered. Register them with the API or CLI."))
            for server in servers:
                info = server.as_dict()
                with ui.row().classes("items-center gap-4 mcp-row"):
                    ui.label(str(info.get("name"))).classes("text-bold i18n-data")
                    ui.label(str(info.get("transport"))).classes("i18n-data")
                    ui.label(_("enabled") if info.get("enabled") else _("disabled"))
                    tools = len(info.get("tools") or [])
                    ui.label(ngettext("{count} tool", "{count} tools", tools).format(count=tools))


class ProvidersView:
    """Provider endpoints with their last probe and circuit state; probe again on demand."""

    def __init__(self, person: Viewer, endpoints: list[Any]) -> None:
        self.person = person
        self.endpoints = endpoints

    def draw(self) -> None:
        """One row per endpoint."""
        self.error = error_line()
        if not self.endpoints:
            ui.label(
                _(
                    "No remote endpoints. Agents use the local models; add an endpoint with the "
                    "API to offer a remote model."
                )
            ).props("id=no-providers")
        for endpoint in self.endpoints:
            probe = endpoint.probe or {}
            with ui.row().classes("w-full items-center gap-4 provider-row"):
                ui.label(endpoint.name).classes("text-bold i18n-data")
                ui.label(f"{endpoint.kind} · {endpoint.base_url} · {endpoint.model}").classes(
                    "i18n-data"
                )
                ui.label(_("circuit {state}").format(state=endpoint.circuit))
                result = ui.label(_probe_text(probe, endpoint.probed_at is not None))

                async def probe_again(endpoint_id: str = endpoint.id, out: Any = result) -> None:
                    out.text = _("Probing…")
                    answer = await api_call(
                        "POST", f"/api/v1/providers/{endpoint_id}/probe", self.person.who.csrf_token
                    )
                    body = answer.get("body") or {}
                    if answer.get("status") != 200:
                        out.text = str(body.get("detail") or _("The probe could not run."))
                        return
                    out.text = _probe_text(body.get("probe") or {}, True)

                ui.button(_("Probe"), on_click=probe_again).props(
                    "outline no-caps " + aria_label(_("Probe {name}").format(name=endpoint.name))
                )


def _probe_text(probe: dict[str, Any], probed: bool) -> str:
    if not probed:
        return _("not probed yet")
    if not probe.get("reachable"):
        return _("unreachable ({reason})").format(reason=probe.get("error") or _("no answer"))
    parts = [_("reachable")]
    parts.append(_("streams") if probe.get("streaming") else _("no streaming"))
    parts.append(_("tools") if probe.get("tools") else _("no tools"))
    if probe.get("context_length"):
        parts.append(_("{count} tokens").format(count=probe["context_length"]))
    return ", ".join(parts)
