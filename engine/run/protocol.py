"""Enclave's own tool protocol, for models without reliable native tool calling.

Each step the model answers with one JSON object, constrained by a JSON schema (llama.cpp turns
it into a grammar): ``{"tool": "<name>", "arguments": {...}}`` to call a tool, or
``{"tool": "respond"}`` to answer the user — the answer itself is then generated as free,
streamed text. On the last allowed step the schema offers only ``respond``, so a run always
converges. Even a 135M-parameter model produces well-formed steps this way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.errors import ModelOutputInvalid
from engine.tools.base import ToolSpec

RESPOND = "respond"
# Schema keywords the grammar converter turns into huge or brittle grammars; the arguments are
# validated against the full schema after parsing anyway.
_GRAMMAR_UNFRIENDLY = frozenset(
    {"minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems"}
)


def grammar_schema(schema: Any) -> Any:
    """``schema`` without the keywords that make grammars explode (kept everywhere else)."""
    if isinstance(schema, dict):
        return {k: grammar_schema(v) for k, v in schema.items() if k not in _GRAMMAR_UNFRIENDLY}
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


def step_schema(specs: list[ToolSpec], allow_tools: bool = True) -> dict[str, Any]:
    """The JSON schema of one step: a call of one of ``specs``, or ``respond``."""
    respond = {
        "type": "object",
        "properties": {"tool": {"const": RESPOND}},
        "required": ["tool"],
        "additionalProperties": False,
    }
    if not allow_tools or not specs:
        return respond
    calls = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": spec.name},
                "arguments": grammar_schema(spec.parameters),
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for spec in specs
    ]
    return {"anyOf": [*calls, respond]}


def _signature(spec: ToolSpec) -> str:
    props = spec.parameters.get("properties", {})
    fields = ", ".join(f'"{name}": {prop.get("type", "value")}' for name, prop in props.items())
    return "{" + fields + "}"


def _example(spec: ToolSpec) -> str:
    props = spec.parameters.get("properties", {})
    args = {name: ("..." if prop.get("type") == "string" else 1) for name, prop in props.items()}
    return json.dumps({"tool": spec.name, "arguments": args})


def tools_prompt(specs: list[ToolSpec]) -> str:
    """The part of the system prompt that explains the protocol and lists the tools."""
    lines = ["", "Tools:"]
    lines += [f"- {s.name}: {s.description} Arguments: {_signature(s)}" for s in specs]
    lines.append(f"- {RESPOND}: answer the user directly.")
    lines += ["", "Examples:"]
    lines += [f"To use {s.name} -> {_example(s)}" for s in specs[:3]]
    lines.append(f'To answer -> {{"tool": "{RESPOND}"}}')
    lines += [
        "",
        "Reply with one JSON object. After a tool result, reply "
        f'{{"tool": "{RESPOND}"}} when you can answer.',
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    """What the model chose: a tool and its arguments, or ``respond`` (tool is None)."""

    tool: str | None
    arguments: dict[str, Any]


def parse_step(text: str, known: set[str]) -> Step:
    """Parse a step, or :class:`ModelOutputInvalid` saying what is wrong (for the repair turn)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelOutputInvalid(
            f"The reply is not valid JSON ({exc.msg} at character {exc.pos}).", output=text[:200]
        ) from None
    if not isinstance(value, dict) or not isinstance(value.get("tool"), str):
        raise ModelOutputInvalid('The reply must be a JSON object with a "tool" field.')
    tool = value["tool"]
    if tool == RESPOND:
        return Step(None, {})
    if tool not in known:
        raise ModelOutputInvalid(
            f"{tool!r} is not one of the tools: {', '.join(sorted(known))}, {RESPOND}.",
            tool=tool,
        )
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ModelOutputInvalid(f'"arguments" for {tool!r} must be a JSON object.', tool=tool)
    return Step(tool, arguments)
