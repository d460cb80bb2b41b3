"""An agent definition: what an agent is, as a versioned, portable document.

Every saved definition carries ``schema_version``. Documents written by older releases are
brought to the current shape by :func:`upgrade`, one tested step per version, before they are
validated — so an export from any release imports into this one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import AgentDefinitionInvalid

SCHEMA_VERSION = 2
TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelChoice(_Strict):
    """A model to run on: a local catalog model id (provider ``local``) or a configured remote
    endpoint's id and the model name it serves."""

    provider: str = Field(default="local", min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200)


class Generation(_Strict):
    """Sampling parameters."""

    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_output_tokens: int = Field(default=512, ge=1, le=8192)


class ToolSetting(_Strict):
    """One tool the agent may call, with its per-tool settings."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TOOL_NAME.match(value):
            raise ValueError("tool names are letters, digits, _ and -, starting with a letter")
        return value


class Limits(_Strict):
    """How far one turn may go."""

    max_steps: int = Field(default=6, ge=1, le=50)
    tool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    turn_timeout_s: float = Field(default=120.0, gt=0, le=3600)


class Output(_Strict):
    """Plain text, or JSON that matches ``json_schema``."""

    mode: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_for_json(self) -> Output:
        if self.mode == "json" and not isinstance(self.json_schema, dict):
            raise ValueError("output mode 'json' needs a json_schema object")
        if self.mode == "text" and self.json_schema is not None:
            raise ValueError("a json_schema is only used with output mode 'json'")
        return self


class AgentDefinition(_Strict):
    """What an agent is. Immutable: an edit is a new version."""

    schema_version: int = SCHEMA_VERSION
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(default="You are a helpful assistant.", max_length=50_000)
    model: ModelChoice
    fallbacks: tuple[ModelChoice, ...] = Field(default=(), max_length=5)
    generation: Generation = Generation()
    tools: tuple[ToolSetting, ...] = Field(default=(), max_length=64)
    knowledge_bases: tuple[str, ...] = Field(default=(), max_length=32)
    limits: Limits = Limits()
    output: Output = Output()
    starter_prompts: tuple[str, ...] = Field(default=(), max_length=8)

    @field_validator("schema_version")
    @classmethod
    def _current(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schema_version must be {SCHEMA_VERSION} after upgrading")
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: tuple[ToolSetting, ...]) -> tuple[ToolSetting, ...]:
        names = [t.name for t in value]
        if len(names) != len(set(names)):
            raise ValueError("each tool may be listed once")
        return value

    @field_validator("starter_prompts")
    @classmethod
    def _short_prompts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() or len(p) > 500 for p in value):
            raise ValueError("starter prompts are 1 to 500 characters")
        return value

    def tool_names(self) -> list[str]:
        """The enabled tools' names, in order."""
        return [t.name for t in self.tools]

    def document(self) -> dict[str, Any]:
        """The definition as a JSON-ready dict (what is stored, exported and diffed)."""
        return self.model_dump(mode="json")


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """v1 named the model by a bare string and kept sampling fields at the top level."""
    doc = dict(doc)
    model = doc.pop("model", None)
    if isinstance(model, str):
        provider, _, name = model.rpartition(":")
        doc["model"] = {"provider": provider or "local", "model": name}
    elif model is not None:
        doc["model"] = model
    generation = {k: doc.pop(k) for k in ("temperature", "max_output_tokens") if k in doc}
    if generation:
        doc["generation"] = generation
    doc["schema_version"] = 2
    return doc


# version → the function that lifts a document from that version to the next.
UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def upgrade(document: Any) -> dict[str, Any]:
    """Bring a stored or imported document to :data:`SCHEMA_VERSION` (not yet validated)."""
    if not isinstance(document, dict):
        raise AgentDefinitionInvalid("An agent definition must be a JSON object.")
    version = document.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AgentDefinitionInvalid("schema_version must be a positive integer.")
    if version > SCHEMA_VERSION:
        raise AgentDefinitionInvalid(
            f"This agent was written by a newer release (schema {version}); this one reads up "
            f"to schema {SCHEMA_VERSION}.",
            schema_version=version,
        )
    doc = dict(document)
    doc["schema_version"] = version
    while doc["schema_version"] < SCHEMA_VERSION:
        doc = UPGRADERS[doc["schema_version"]](doc)
    return doc


def parse_definition(document: Any) -> AgentDefinition:
    """Upgrade and validate a document, or :class:`AgentDefinitionInvalid` naming the field."""
    doc = upgrade(document)
    try:
        return AgentDefinition.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise AgentDefinitionInvalid(
            f"The agent definition is invalid at {where}: {first['msg']}",
            field=where,
            errors=len(exc.errors()),
        ) from exc


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Field-level differences between two documents: ``[{"field", "old", "new"}]``, where
    nested objects are compared field by field and lists as wholes."""
    changes: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes.extend(diff(a, b, f"{path}."))
        elif a != b:
            changes.append({"field": path, "old": a, "new": b})
    return changes
