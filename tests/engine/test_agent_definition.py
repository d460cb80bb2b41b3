"""Agent definitions: validation names the field, upgraders lift old documents, diff is
field-level."""

from __future__ import annotations

from typing import Any

import pytest

from engine.agents import SCHEMA_VERSION, AgentDefinition, diff, parse_definition, upgrade
from engine.agents.definition import UPGRADERS
from engine.errors import AgentDefinitionInvalid


def current(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": "Helper",
        "model": {"provider": "local", "model": "smollm2-135m-instruct-q4_1"},
    }
    doc.update(changes)
    return doc


V1_DOCUMENT = {
    "schema_version": 1,
    "name": "Old helper",
    "instructions": "Be brief.",
    "model": "lan-server:llama-3-8b",
    "temperature": 0.2,
    "max_output_tokens": 300,
    "tools": [{"name": "calculator"}],
}


def test_a_minimal_document_gets_the_defaults() -> None:
    definition = parse_definition(current())
    assert isinstance(definition, AgentDefinition)
    assert definition.generation.temperature == 0.7
    assert definition.limits.max_steps == 6
    assert definition.output.mode == "text"
    assert definition.document()["schema_version"] == SCHEMA_VERSION
    # The stored document parses back to an equal definition.
    assert parse_definition(definition.document()) == definition


def test_a_v1_document_is_upgraded() -> None:
    definition = parse_definition(V1_DOCUMENT)
    assert definition.model.provider == "lan-server"
    assert definition.model.model == "llama-3-8b"
    assert definition.generation.temperature == 0.2
    assert definition.generation.max_output_tokens == 300
    assert definition.tool_names() == ["calculator"]
    assert definition.instructions == "Be brief."


def test_a_v1_bare_model_name_means_a_local_model() -> None:
    doc = upgrade({"name": "x", "model": "smollm2-135m-instruct-q4_1"})  # no schema_version: 1
    assert doc["model"] == {"provider": "local", "model": "smollm2-135m-instruct-q4_1"}
    assert doc["schema_version"] == SCHEMA_VERSION
    assert "generation" not in doc


def test_every_older_schema_has_an_upgrader() -> None:
    assert sorted(UPGRADERS) == list(range(1, SCHEMA_VERSION))


def test_upgrade_does_not_change_the_callers_document() -> None:
    original = dict(V1_DOCUMENT)
    upgrade(original)
    assert original == V1_DOCUMENT


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (current(name=""), "name"),
        (current(limits={"max_steps": 0}), "limits.max_steps"),
        (current(generation={"temperature": 5}), "generation.temperature"),
        (current(tools=[{"name": "1bad"}]), "tools.0.name"),
        (current(tools=[{"name": "calculator"}, {"name": "calculator"}]), "tools"),
        (current(output={"mode": "json"}), "output"),
        (current(surprise=True), "surprise"),
        ({"schema_version": SCHEMA_VERSION, "name": "no model"}, "model"),
    ],
)
def test_validation_errors_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(AgentDefinitionInvalid) as caught:
        parse_definition(document)
    assert caught.value.context["field"] == field
    assert field in caught.value.message
    assert caught.value.code == "agent_definition_invalid"


@pytest.mark.parametrize(
    "document", [[], "agent", {"schema_version": "2"}, {"schema_version": 0}, None]
)
def test_malformed_documents_are_refused(document: Any) -> None:
    with pytest.raises(AgentDefinitionInvalid):
        parse_definition(document)


def test_a_document_from_a_newer_release_is_refused() -> None:
    with pytest.raises(AgentDefinitionInvalid, match="newer release"):
        parse_definition(current(schema_version=SCHEMA_VERSION + 1))


def test_diff_is_field_level() -> None:
    old = parse_definition(current()).document()
    new = parse_definition(
        current(
            instructions="Answer in French.",
            limits={"max_steps": 3},
            tools=[{"name": "calculator"}],
        )
    ).document()
    changes = {c["field"]: (c["old"], c["new"]) for c in diff(old, new)}
    assert changes == {
        "instructions": ("You are a helpful assistant.", "Answer in French."),
        "limits.max_steps": (6, 3),
        "tools": ([], [{"name": "calculator", "settings": {}}]),
    }
    assert diff(old, old) == []
    # Reversed, every change swaps sides.
    assert {c["field"]: (c["new"], c["old"]) for c in diff(new, old)} == changes


def test_diff_reports_added_and_removed_keys() -> None:
    assert diff({"a": 1}, {"b": 2}) == [
        {"field": "a", "old": 1, "new": None},
        {"field": "b", "old": None, "new": 2},
    ]
