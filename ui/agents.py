"""/agents (list, starter templates, import) and /agents/new (the builder form, empty).

Builders and administrators build agents; members use the agents shared with them in chat.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.agents.templates import template_document
from appliance.identity.models import User
from appliance.knowledge.runtime import knowledge_runtime
from appliance.model_files import catalog_for
from ui.access import BUILDER_ROLES, viewer
from ui.agent_detail import add_agent_detail_page
from ui.agent_form import SEP, AgentForm, Choices
from ui.agent_templates import template_cards
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _
from ui.offload import in_thread


def load_choices(appliance: Appliance, user: User) -> Choices:
    """Models (local catalog and enabled remote endpoints), tools (built-in and MCP) and the
    knowledge bases ``user`` may attach."""
    choices = Choices()
    for model_id, entry in catalog_for(appliance.home).entries.items():
        choices.models[f"local{SEP}{model_id}"] = _("{model} (local)").format(
            model=entry.display_name
        )
    for endpoint in appliance.services.providers.list_endpoints():
        if endpoint.enabled:
            key = f"{endpoint.id}{SEP}{endpoint.model}"
            choices.models[key] = _("{endpoint}: {model} (remote)").format(
                endpoint=endpoint.name, model=endpoint.model
            )
    runs = appliance.runs
    for spec in runs.runner.tools.specs():
        choices.tools[spec.name] = f"{spec.name}: {spec.description.split('.')[0]}"
    for tool in runs.mcp.tools():
        choices.tools[tool.spec.name] = _("{tool} (MCP)").format(tool=tool.spec.name)
    try:
        bases = knowledge_runtime(appliance).service.list_bases(user)
    except EnclaveError:
        bases = []
    choices.knowledge_bases.update({kb.id: kb.name for kb in bases})
    return choices


def add_agent_pages(appliance: Appliance) -> None:
    """Register /agents, /agents/new and /agents/{agent_id}."""

    @ui.page("/agents")
    async def agents_page(request: Request) -> None:
        person = await viewer(appliance, request, BUILDER_ROLES, _("Agents"))
        if person is None:
            return
        services = appliance.services
        agents = await in_thread(services.agents.list_agents, person.user)
        with frame(_("Agents"), role=person.role, wide=True):
            heading(_("Agents"))
            with ui.row().classes("gap-2"):
                ui.button(
                    _("New agent"), icon="add", on_click=lambda: ui.navigate.to("/agents/new")
                ).props("id=new-agent")
                ui.button(_("Import"), icon="upload", on_click=lambda: import_dialog()).props(
                    "outline id=import-agent"
                )
            error = error_line()
            if not agents:
                ui.label(_("No agents yet. Start from a template below or create a new one."))
            with ui.column().classes("w-full gap-1").props("id=agent-list"):
                for agent in agents:
                    access = _("can edit") if agent.level == "edit" else _("can use")
                    with ui.row().classes("w-full items-center gap-4 agent-row"):
                        ui.link(agent.name, f"/agents/{agent.id}").classes("text-bold i18n-data")
                        ui.label(agent.description).classes("grow text-grey-8 i18n-data")
                        ui.label(
                            _("version {number} · {access}").format(
                                number=agent.active_version, access=access
                            )
                        ).classes("text-caption")
            subheading(_("Start from a template"))
            with ui.row().classes("w-full gap-4"):
                # from_template is defined below; the cards call it when clicked.
                template_cards(lambda template_id: from_template(template_id))

        async def from_template(template_id: str) -> None:
            error.text = ""
            try:
                made = await in_thread(
                    services.agents.create,
                    person.user,
                    template_document(template_id),
                    _("Created from a template."),
                )
            except EnclaveError as exc:
                error.text = exc.message
                return
            ui.navigate.to(f"/agents/{made.id}")

        def import_dialog() -> None:
            with ui.dialog() as dialog, ui.card().classes("w-[40rem]"):
                subheading(_("Import an agent"))
                ui.label(_('Paste an exported agent (JSON with "format": "enclave-agent").'))
                text = ui.textarea(_("Exported agent")).classes("w-full").props("id=import-text")
                problem = error_line()

                async def submit() -> None:
                    try:
                        document: Any = json.loads(text.value or "")
                    except json.JSONDecodeError as exc:
                        problem.text = _("This is not valid JSON ({error}, line {line}).").format(
                            error=exc.msg, line=exc.lineno
                        )
                        return
                    try:
                        made = await in_thread(services.agents.import_agent, person.user, document)
                    except EnclaveError as exc:
                        problem.text = exc.message
                        return
                    dialog.close()
                    ui.navigate.to(f"/agents/{made.id}")

                with ui.row():
                    ui.button(_("Import"), on_click=submit).props("id=import-submit")
                    ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            dialog.open()

    @ui.page("/agents/new")
    async def new_agent_page(request: Request) -> None:
        person = await viewer(appliance, request, BUILDER_ROLES, _("New agent"))
        if person is None:
            return
        choices = await in_thread(load_choices, appliance, person.user)
        default = template_document("summariser")
        blank = {
            "name": "",
            "instructions": "You are a helpful assistant.",
            "model": default["model"],
            "generation": {"temperature": 0.7, "max_output_tokens": 512},
        }
        with frame(_("New agent"), role=person.role, wide=True):
            heading(_("New agent"))
            form = AgentForm(blank, choices, editable=True)
            error = error_line().props("id=agent-error")

            async def create() -> None:
                error.text = ""
                try:
                    made = await in_thread(
                        appliance.services.agents.create, person.user, form.document()
                    )
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                ui.navigate.to(f"/agents/{made.id}")

            ui.button(_("Create agent"), on_click=create).props("id=agent-create")

    add_agent_detail_page(appliance, load_choices)
