"""Built-in tools that need no sandbox: ``calculator`` and ``current_time``.

The calculator evaluates arithmetic by walking Python's AST with an allowlist of node types —
never ``eval`` — and bounds exponents and result sizes so ``9**9**9`` cannot hang the engine.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.tools.base import ToolContext, ToolOutput, ToolSpec

MAX_EXPRESSION = 500
MAX_EXPONENT = 1000
MAX_DIGITS = 200

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class CalculationError(ValueError):
    """An expression the calculator refuses or cannot evaluate; the message says why."""


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculationError("Only numbers are allowed.")
    if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:
        raise CalculationError(f"The result has more than {MAX_DIGITS} digits.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError("The result is not a finite number.")
    return value


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculationError(f"Exponents are limited to {MAX_EXPONENT}.")
        try:
            return _number(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculationError("Division by zero.") from None
        except OverflowError:
            raise CalculationError("The result is too large.") from None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        try:
            return _number(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalculationError(f"{node.func.id}: {exc}") from None
    raise CalculationError(
        f"Unsupported expression element {type(node).__name__}; use numbers, + - * / // % **, "
        f"parentheses and {', '.join(sorted(_FUNCTIONS))}."
    )


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely, or :class:`CalculationError`."""
    if len(expression) > MAX_EXPRESSION:
        raise CalculationError(f"Expressions are limited to {MAX_EXPRESSION} characters.")
    # Models write "×" and "^" for multiplication and powers.
    text = expression.replace("×", "*").replace("^", "**").strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"Not a valid expression: {exc.msg}.") from None
    return _eval(tree)


class Calculator:
    """``calculator``: exact integer arithmetic and common float functions."""

    spec = ToolSpec(
        name="calculator",
        description="Evaluate an arithmetic expression, e.g. 1234*5678 or sqrt(2)/3.",
        parameters={
            "type": "object",
            "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 500}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        expression = arguments["expression"]
        try:
            value = calculate(expression)
        except CalculationError as exc:
            return ToolOutput(f"Error: {exc}", is_error=True, audit={"error": "calculation"})
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        return ToolOutput(str(value), data={"expression": expression, "value": value})


class CurrentTime:
    """``current_time``: the date and time now, in UTC or a named IANA time zone."""

    spec = ToolSpec(
        name="current_time",
        description="The current date and time (ISO 8601), in UTC or an IANA time zone.",
        parameters={
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 64}},
            "additionalProperties": False,
        },
    )

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        name = arguments.get("timezone") or "UTC"
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ToolOutput(f"Error: unknown time zone {name!r}.", is_error=True)
        now = self.clock().astimezone(zone)
        return ToolOutput(now.isoformat(timespec="seconds"), data={"timezone": name})
