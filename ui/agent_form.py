"""The agent builder form: instructions, model and fallbacks, tools, knowledge bases, limits.

The form edits a copy of the definition document and keeps every field it does not show
(output mode, starter prompts, tool settings), so saving never drops what another client set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from ui.frame import subheading
from ui.i18n import _, aria_label

SEP = "::"


@dataclass
class Choices:
    """What the form offers: models (local and remote endpoints), tools, knowledge bases."""

    models: dict[str, str] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    knowledge_bases: dict[str, str] = field(default_factory=dict)


def model_key(choice: dict[str, Any]) -> str:
    """A model choice as one select value."""
    return f"{choice.get('provider', 'local')}{SEP}{choice.get('model', '')}"


def model_choice(key: str) -> dict[str, str]:
    """A select value back as ``{"provider", "model"}``."""
    provider, _sep, model = key.partition(SEP)
    return {"provider": provider, "model": model}


class AgentForm:
    """The fields of one definition; :meth:`document` builds what is saved."""

    def __init__(self, document: dict[str, Any], choices: Choices, editable: bool) -> None:
        self.base = copy.deepcopy(document)
        models = dict(choices.models)
        current = model_key(document.get("model") or {})
        fallbacks = [model_key(f) for f in document.get("fallbacks") or []]
        for key in [current, *fallbacks]:
            models.setdefault(
                key, _("{name} (not available now)").format(name=key.replace(SEP, " / "))
            )
        tools = dict(choices.tools)
        chosen_tools = [str(t.get("name")) for t in document.get("tools") or []]
        for name in chosen_tools:
            tools.setdefault(name, _("{name} (not available now)").format(name=name))
        bases = dict(choices.knowledge_bases)
        chosen_bases = list(document.get("knowledge_bases") or [])
        for kb in chosen_bases:
            bases.setdefault(kb, _("{name} (not visible to you)").format(name=kb))
        generation = document.get("generation") or {}
        limits = document.get("limits") or {}

        with (
            ui.column()
            .classes("w-full gap-2")
            .props("id=agent-form role=form " + aria_label(_("Agent")))
        ):
            subheading(_("Definition"))
            self.name = ui.input(_("Name"), value=document.get("name", "")).classes("w-full")
            self.description = ui.input(_("Description"), value=document.get("description", ""))
            self.description.classes("w-full")
            self.instructions = (
                ui.textarea(_("Instructions"), value=document.get("instructions", ""))
                .classes("w-full")
                .props("autogrow")
            )
            self.model = ui.select(models, label=_("Model"), value=current).classes("w-full")
            self.fallbacks = (
                ui.select(
                    models,
                    label=_("Fallback models (tried in order)"),
                    value=fallbacks,
                    multiple=True,
                )
                .classes("w-full")
                .props("use-chips")
            )
            self.tools = (
                ui.select(tools, label=_("Tools"), value=chosen_tools, multiple=True)
                .classes("w-full")
                .props("use-chips")
            )
            self.knowledge_bases = (
                ui.select(bases, label=_("Knowledge bases"), value=chosen_bases, multiple=True)
                .classes("w-full")
                .props("use-chips")
            )
            subheading(_("Generation and limits"))
            with ui.row().classes("gap-4 agent-numbers"):
                self.temperature = ui.number(
                    _("Temperature"), value=generation.get("temperature", 0.7), min=0, max=2,
                    step=0.1,
                )  # fmt: skip
                self.max_tokens = ui.number(
                    _("Max output tokens"), value=generation.get("max_output_tokens", 512), min=1,
                    max=8192, step=1,
                )  # fmt: skip
                self.max_steps = ui.number(
                    _("Max steps"), value=limits.get("max_steps", 6), min=1, max=50, step=1
                )
                self.tool_timeout = ui.number(
                    _("Tool timeout (s)"), value=limits.get("tool_timeout_s", 30.0), min=1,
                    max=600,
                )  # fmt: skip
                self.turn_timeout = ui.number(
                    _("Turn timeout (s)"), value=limits.get("turn_timeout_s", 120.0), min=1,
                    max=3600,
                )  # fmt: skip
            for number in (
                self.temperature, self.max_tokens, self.max_steps, self.tool_timeout,
                self.turn_timeout,
            ):  # fmt: skip
                number.classes("w-36")
            if not editable:
                for element in (
                    self.name, self.description, self.instructions, self.model, self.fallbacks,
                    self.tools, self.knowledge_bases, self.temperature, self.max_tokens,
                    self.max_steps, self.tool_timeout, self.turn_timeout,
                ):  # fmt: skip
                    element.disable()

    def document(self) -> dict[str, Any]:
        """The definition document with the form's values (other fields kept as they were)."""
        doc = copy.deepcopy(self.base)
        doc["name"] = (self.name.value or "").strip()
        doc["description"] = self.description.value or ""
        doc["instructions"] = self.instructions.value or ""
        doc["model"] = model_choice(str(self.model.value or ""))
        doc["fallbacks"] = [model_choice(str(k)) for k in self.fallbacks.value or []]
        settings = {str(t.get("name")): t.get("settings", {}) for t in doc.get("tools") or []}
        doc["tools"] = [
            {"name": n, "settings": settings.get(n, {})} for n in self.tools.value or []
        ]
        doc["knowledge_bases"] = list(self.knowledge_bases.value or [])
        doc["generation"] = {
            **(doc.get("generation") or {}),
            "temperature": _number(self.temperature.value),
            "max_output_tokens": _integer(self.max_tokens.value),
        }
        doc["limits"] = {
            **(doc.get("limits") or {}),
            "max_steps": _integer(self.max_steps.value),
            "tool_timeout_s": _number(self.tool_timeout.value),
            "turn_timeout_s": _number(self.turn_timeout.value),
        }
        return doc


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) else value


def _integer(value: Any) -> Any:
    return int(value) if isinstance(value, int | float) else value
