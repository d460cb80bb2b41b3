"""Starter templates: ready-made agent definitions a builder creates an agent from.

Each template runs on the catalog's default local model, so it works on a fresh, offline
install; the builder edits the result like any other agent (a new version per save).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.errors import NotFound
from engine.agents import SCHEMA_VERSION
from models import load_catalog


@dataclass(frozen=True)
class Template:
    """A named starting point: a short summary and a definition document (without a model)."""

    id: str
    summary: str
    document: dict[str, Any]


TEMPLATES: tuple[Template, ...] = (
    Template(
        "document-qa",
        "Answers questions from the knowledge bases you attach, citing its sources.",
        {
            "name": "Document Q&A",
            "description": "Answers questions from attached documents, with citations.",
            "instructions": (
                "Answer only from the passages the knowledge_search tool returns. Cite each "
                "passage you use. If the documents do not contain the answer, say so."
            ),
            "tools": [{"name": "knowledge_search", "settings": {"top_k": 5}}],
            "generation": {"temperature": 0.2, "max_output_tokens": 512},
            "starter_prompts": ["What does the policy say about remote work?"],
        },
    ),
    Template(
        "data-analyst",
        "Analyses uploaded tables by writing and running Python in the sandbox.",
        {
            "name": "Data analyst",
            "description": "Explores CSV and spreadsheet data with Python.",
            "instructions": (
                "You are a careful data analyst. Use the python tool to load and analyse the "
                "files you are given; show the figures you computed and how."
            ),
            "tools": [{"name": "python", "settings": {}}, {"name": "calculator", "settings": {}}],
            "generation": {"temperature": 0.2, "max_output_tokens": 1024},
            "limits": {"max_steps": 10, "tool_timeout_s": 60.0, "turn_timeout_s": 300.0},
            "starter_prompts": ["Summarise the columns of the attached file."],
        },
    ),
    Template(
        "summariser",
        "Turns long text into a short, faithful summary.",
        {
            "name": "Summariser",
            "description": "Summarises text you paste.",
            "instructions": (
                "Summarise the user's text in at most five bullet points. Keep names, numbers "
                "and dates exact; add nothing that is not in the text."
            ),
            "generation": {"temperature": 0.3, "max_output_tokens": 400},
            "starter_prompts": ["Summarise this meeting transcript:"],
        },
    ),
    Template(
        "translator",
        "Translates text between languages, keeping the formatting.",
        {
            "name": "Translator",
            "description": "Translates text, keeping its formatting.",
            "instructions": (
                "Translate the user's text into the language they ask for (English if they do "
                "not say). Keep formatting, names and numbers; output only the translation."
            ),
            "generation": {"temperature": 0.1, "max_output_tokens": 1024},
            "starter_prompts": ["Translate into French: The meeting moved to Thursday."],
        },
    ),
    Template(
        "it-helpdesk",
        "First-line IT support that walks users through common fixes.",
        {
            "name": "IT helpdesk",
            "description": "Helps with everyday IT problems.",
            "instructions": (
                "You are the first-line IT helpdesk. Ask for the device and the exact error, "
                "then give numbered steps. Never ask for passwords. Suggest opening a ticket "
                "when a fix needs an administrator."
            ),
            "tools": [{"name": "current_time", "settings": {}}],
            "generation": {"temperature": 0.3, "max_output_tokens": 512},
            "starter_prompts": ["My laptop cannot connect to the Wi-Fi.", "I forgot my password."],
        },
    ),
)


def default_model_id() -> str:
    """The catalog's default local model (what every template runs on)."""
    return load_catalog().default


def list_templates() -> list[dict[str, Any]]:
    """Every template as ``{"id", "name", "summary", "definition"}``."""
    return [
        {
            "id": t.id,
            "name": t.document["name"],
            "summary": t.summary,
            "definition": template_document(t.id),
        }
        for t in TEMPLATES
    ]


def template_document(template_id: str, name: str | None = None) -> dict[str, Any]:
    """The definition document of a template (on the default local model), optionally renamed;
    an unknown template id raises NotFound."""
    for template in TEMPLATES:
        if template.id == template_id:
            doc: dict[str, Any] = {
                **template.document,
                "schema_version": SCHEMA_VERSION,
                "model": {"provider": "local", "model": default_model_id()},
            }
            if name is not None:
                doc["name"] = name
            return doc
    raise NotFound(f"There is no agent template {template_id!r}.")
