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
from ui.offload import in_thread
from ui.session import api_call


def _left(name: str, label: str) -> dict[str, str]:
    return {"name": name, "label": label, "field": name, "align": "left"}


def catalog_rows(appliance: Appliance) -> list[dict[str, Any]]:
    """Every catalog model with whether its file is present."""
    catalog = catalog_for(appliance.home)
    rows = []
    for model_id, entry in catalog.entries.items():
        try:
            resolve_model_file(entry, appliance.home)
            present = "present"
        except EnclaveError as exc:
            present = f"missing: {exc.message}"
        rows.append(
            {
                "id": model_id,
                "name": entry.display_name + (" (default)" if model_id == catalog.default else ""),
                "size": f"{entry.size_bytes / 2**20:.0f} MiB",
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
        person = await viewer(appliance, request, ADMIN_ROLES, "Models")
        if person is None:
            return
        runs = appliance.runs
        runs.hub.start()
        rows = await in_thread(catalog_rows, appliance)
        status = await runs.hub.status()
        endpoints = await in_thread(appliance.services.providers.list_endpoints)
        servers = await in_thread(runs.mcp.list_servers)
        with frame("Models", role=person.role, wide=True):
            admin_nav(person.role)
            heading("Models and providers")
            subheading("Model catalog")
            ui.table(
                columns=[
                    _left("name", "Model"),
                    _left("id", "Id"),
                    _left("size", "Size"),
                    _left("context", "Context (tokens)"),
                    _left("licence", "Licence"),
                    _left("file", "File"),
                ],
                rows=rows,
                row_key="id",
            ).props("flat bordered wrap-cells id=model-catalog").classes("w-full")
            subheading("Loaded models and queue")
            if not status:
                ui.label(
                    "No local model is loaded yet; the first chat loads one (a few seconds)."
                ).props("id=hub-status")
            else:
                ui.table(
                    columns=[
                        _left("model", "Model"),
                        _left("loaded", "Loaded"),
                        _left("waiting", "Waiting"),
                        _left("in_flight", "Generating"),
                        _left("average", "Average answer (s)"),
                    ],
                    rows=[
                        {
                            "model": s["model"],
                            "loaded": "yes" if s["loaded"] else "no (unloaded when idle)",
                            "waiting": s["queue"].get("waiting", 0),
                            "in_flight": s["queue"].get("in_flight", 0),
                            "average": s["queue"].get("average_generation_s", 0),
                        }
                        for s in status
                    ],
                    row_key="model",
                ).props("flat bordered id=hub-status").classes("w-full")
            subheading("Remote providers")
            ProvidersView(person, endpoints).draw()
            subheading("MCP servers")
            if not servers:
                ui.label("No MCP servers are registered. Register them with the API or CLI.")
            for server in servers:
                info = server.as_dict()
                with ui.row().classes("items-center gap-4 mcp-row"):
                    ui.label(str(info.get("name"))).classes("text-bold")
                    ui.label(str(info.get("transport")))
                    ui.label("enabled" if info.get("enabled") else "disabled")
                    ui.label(f"{len(info.get('tools') or [])} tools")


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
                "No remote endpoints. Agents use the local models; add an endpoint with the API "
                "to offer a remote model."
            ).props("id=no-providers")
        for endpoint in self.endpoints:
            probe = endpoint.probe or {}
            with ui.row().classes("w-full items-center gap-4 provider-row"):
                ui.label(endpoint.name).classes("text-bold")
                ui.label(f"{endpoint.kind} · {endpoint.base_url} · {endpoint.model}")
                ui.label(f"circuit {endpoint.circuit}")
                result = ui.label(_probe_text(probe, endpoint.probed_at is not None))

                async def probe_again(endpoint_id: str = endpoint.id, out: Any = result) -> None:
                    out.text = "Probing…"
                    answer = await api_call(
                        "POST", f"/api/v1/providers/{endpoint_id}/probe", self.person.who.csrf_token
                    )
                    body = answer.get("body") or {}
                    if answer.get("status") != 200:
                        out.text = str(body.get("detail") or "The probe could not run.")
                        return
                    out.text = _probe_text(body.get("probe") or {}, True)

                ui.button("Probe", on_click=probe_again).props(
                    f'outline no-caps aria-label="Probe {endpoint.name}"'
                )


def _probe_text(probe: dict[str, Any], probed: bool) -> str:
    if not probed:
        return "not probed yet"
    if not probe.get("reachable"):
        return f"unreachable ({probe.get('error') or 'no answer'})"
    parts = ["reachable"]
    parts.append("streams" if probe.get("streaming") else "no streaming")
    parts.append("tools" if probe.get("tools") else "no tools")
    if probe.get("context_length"):
        parts.append(f"{probe['context_length']} tokens")
    return ", ".join(parts)
