"""Agent definitions: the versioned document an agent is (:mod:`engine.agents.definition`)."""

from engine.agents.definition import (
    SCHEMA_VERSION,
    AgentDefinition,
    Generation,
    Limits,
    ModelChoice,
    Output,
    ToolSetting,
    diff,
    parse_definition,
    upgrade,
)

__all__ = [
    "SCHEMA_VERSION",
    "AgentDefinition",
    "Generation",
    "Limits",
    "ModelChoice",
    "Output",
    "ToolSetting",
    "diff",
    "parse_definition",
    "upgrade",
]
