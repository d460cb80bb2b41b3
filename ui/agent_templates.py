"""The starter templates' names and summaries as the UI shows them, marked for translation.

The templates live in the appliance layer (English, as stored in new agents); this module only
marks their card texts for extraction. tests/ui/test_i18n.py fails when a template's name or
summary is missing here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from appliance.agents.templates import list_templates
from ui.i18n import N_, _

CARD_TEXTS = (
    N_("Document Q&A"),
    N_("Answers questions from the knowledge bases you attach, citing its sources."),
    N_("Data analyst"),
    N_("Analyses uploaded tables by writing and running Python in the sandbox."),
    N_("Summariser"),
    N_("Turns long text into a short, faithful summary."),
    N_("Translator"),
    N_("Translates text between languages, keeping the formatting."),
    N_("IT helpdesk"),
    N_("First-line IT support that walks users through common fixes."),
)


def template_cards(pick: Callable[[str], Awaitable[Any]]) -> None:
    """One card per starter template (name, summary, a "Use" button calling ``pick(id)``)."""
    for template in list_templates():
        title, summary = _(str(template["name"])), _(str(template["summary"]))
        with ui.card().classes("w-64 template-card"):
            ui.label(title).classes("text-bold")
            ui.label(summary).classes("text-body2")
            ui.button(
                _("Use {template}").format(template=title),
                on_click=lambda t=template: pick(str(t["id"])),
            ).props("outline no-caps")


__all__ = ["CARD_TEXTS", "template_cards"]
