"""Docs that must stay true to the code (datasette-style documentation tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.cli import app as cli_app
from appliance.errors import EnclaveError
from appliance.settings import EnclaveSettings

ROOT = Path(__file__).resolve().parents[1]


def _all_errors() -> list[type[EnclaveError]]:
    seen, stack = [], [EnclaveError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


@pytest.mark.parametrize("field", sorted(EnclaveSettings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    assert f"`ENCLAVE_{field.upper()}`" in text


@pytest.mark.parametrize("error", _all_errors(), ids=lambda e: e.code)
def test_every_error_code_is_documented(error: type[EnclaveError]) -> None:
    text = (ROOT / "docs" / "api.md").read_text("utf-8")
    assert re.search(rf"`{error.code}`\s*\|\s*{error.http_status}", text), error.code


def test_error_codes_are_unique() -> None:
    codes = [e.code for e in _all_errors()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("command", sorted(c.name or "" for c in cli_app.registered_commands))
def test_every_cli_command_is_documented(command: str) -> None:
    text = (ROOT / "docs" / "admin.md").read_text("utf-8")
    assert f"enclave {command}" in text


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text("utf-8").splitlines()
    head = "\n".join(lines[:15])
    assert "make run" in head
    assert "make test" in head
