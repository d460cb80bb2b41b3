"""The dependency rule: ui → appliance → engine → sandbox, never upwards.

``models`` (the catalog) is data every layer above the sandbox may read; it imports nothing of
the project. ``sandbox`` imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"sandbox": 0, "models": 0, "engine": 1, "appliance": 2, "ui": 3}
# What each layer may import from the project besides itself.
ALLOWED = {
    "sandbox": set(),
    "models": set(),
    "engine": {"sandbox", "models"},
    "appliance": {"engine", "sandbox", "models"},
    "ui": {"appliance"},
}


def imported_packages(source: str) -> set[str]:
    """Top-level package names imported by ``source`` (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def violations(root: Path) -> list[str]:
    """Every import that breaks the rule, as ``file: layer imports other``."""
    bad = []
    for layer in RANK:
        for path in sorted((root / layer).rglob("*.py")) if (root / layer).is_dir() else []:
            for package in imported_packages(path.read_text("utf-8")) & set(RANK):
                if package != layer and package not in ALLOWED[layer]:
                    bad.append(f"{path.relative_to(root)}: {layer} imports {package}")
    return bad


def test_project_layers_import_only_downwards() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("layer", "line"),
    [
        ("engine", "from appliance.errors import EnclaveError\n"),
        ("sandbox", "import engine\n"),
        ("appliance", "from ui import register\n"),
        ("ui", "import sandbox.backends\n"),
    ],
)
def test_checker_catches_an_upward_import(tmp_path: Path, layer: str, line: str) -> None:
    (tmp_path / layer).mkdir()
    (tmp_path / layer / "mod.py").write_text(line)
    assert len(violations(tmp_path)) == 1


def test_appliance_public_api() -> None:
    import appliance

    assert sorted(appliance.__all__) == [
        "Appliance",
        "EnclaveError",
        "EnclaveSettings",
        "Role",
        "State",
        "__version__",
    ]
    for name in appliance.__all__:
        assert getattr(appliance, name) is not None
