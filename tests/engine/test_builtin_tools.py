"""Built-in tools and the tool registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.errors import ModelOutputInvalid, ToolArgumentsInvalid, UnknownTool
from engine.run.protocol import parse_step, step_schema, tools_prompt
from engine.tools.base import ToolContext, ToolRegistry
from engine.tools.builtin import CalculationError, Calculator, CurrentTime, calculate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1234*5678", 7006652),
        ("2 ** 10", 1024),
        ("2^10", 1024),
        ("7 × 6", 42),
        ("(1 + 2) * 3 - 4 / 2", 7.0),
        ("17 // 5", 3),
        ("-3 % 5", 2),
        ("sqrt(16)", 4.0),
        ("max(3, 9, 4)", 9),
        ("round(pi, 3)", 3.142),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "Unsupported"),
        ("open('/etc/passwd')", "Unsupported"),
        ("(1).__class__", "Unsupported"),
        ("[x for x in range(9)]", "Unsupported"),
        ("lambda: 1", "Unsupported"),
        ("9**9**9", "Exponents are limited"),
        ("10**150 * 10**150", "digits"),
        ("1/0", "Division by zero"),
        ("sqrt(-1)", "sqrt"),
        ("1 +", "Not a valid expression"),
        ("1" * 501, "limited to 500"),
        ("True + 1", "Only numbers"),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(CalculationError, match=reason):
        calculate(expression)


async def test_calculator_tool_reports_errors_to_the_model() -> None:
    context = ToolContext(run_id="r")
    ok = await Calculator().run({"expression": "6*7"}, context)
    assert ok.content == "42" and not ok.is_error
    bad = await Calculator().run({"expression": "1/0"}, context)
    assert bad.is_error and "Division by zero" in bad.content


async def test_current_time_in_a_time_zone() -> None:
    fixed = CurrentTime(clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    out = await fixed.run({"timezone": "Europe/Paris"}, ToolContext(run_id="r"))
    assert out.content == "2026-01-02T04:04:05+01:00"
    assert (await fixed.run({}, ToolContext(run_id="r"))).content == "2026-01-02T03:04:05+00:00"
    bad = await fixed.run({"timezone": "Mars/Olympus"}, ToolContext(run_id="r"))
    assert bad.is_error and "unknown time zone" in bad.content


def test_registry_validates_arguments_against_the_schema() -> None:
    tools = ToolRegistry([Calculator(), CurrentTime()])
    assert tools.names() == ["calculator", "current_time"]
    assert tools.validate("calculator", {"expression": "1"}) == {"expression": "1"}
    with pytest.raises(ToolArgumentsInvalid, match="expression"):
        tools.validate("calculator", {})
    with pytest.raises(ToolArgumentsInvalid, match="Additional properties"):
        tools.validate("calculator", {"expression": "1", "x": 2})
    with pytest.raises(ToolArgumentsInvalid, match="JSON object"):
        tools.validate("calculator", ["1"])
    with pytest.raises(UnknownTool, match="teleport"):
        tools.get("teleport")
    with pytest.raises(ValueError, match="already registered"):
        tools.register(Calculator())


def test_the_step_schema_and_prompt_name_every_tool() -> None:
    specs = [Calculator.spec, CurrentTime.spec]
    schema = step_schema(specs)
    consts = [option["properties"]["tool"]["const"] for option in schema["anyOf"]]
    assert consts == ["calculator", "current_time", "respond"]
    # Length limits are left to validation: they blow grammars up.
    assert "maxLength" not in str(schema)
    assert step_schema(specs, allow_tools=False)["properties"]["tool"] == {"const": "respond"}
    prompt = tools_prompt(specs)
    assert "calculator" in prompt and '"expression": string' in prompt


def test_parse_step_says_what_is_wrong() -> None:
    known = {"calculator"}
    assert parse_step('{"tool": "respond"}', known).tool is None
    step = parse_step('{"tool": "calculator", "arguments": {"expression": "1"}}', known)
    assert step.tool == "calculator" and step.arguments == {"expression": "1"}
    for text, reason in (
        ("{", "not valid JSON"),
        ("[]", '"tool" field'),
        ('{"tool": "rm"}', "not one of the tools"),
        ('{"tool": "calculator", "arguments": 3}', "must be a JSON object"),
    ):
        with pytest.raises(ModelOutputInvalid, match=reason):
            parse_step(text, known)
