"""`enclave models list|verify|import` on real GGUF files (a tiny one written with the gguf
package, and the bundled SmolLM2 file)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from appliance.errors import ModelFileInvalid, ModelHashMismatch
from appliance.home import Home
from appliance.model_files import import_model, model_statuses
from models import load_catalog
from models.gguf_meta import read_gguf_info
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("cli_env")


def write_tiny_gguf(path: Path, name: str = "tiny test model", template: bool = True) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(512)
    writer.add_license("mit")
    if template:
        writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.ensure()
    return home


def test_reads_the_header_not_the_extension(tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_gguf(tmp_path / "model.bin"))
    assert info.architecture == "llama"
    assert info.context_length == 512
    assert info.has_chat_template
    assert info.licence == "mit"
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ValueError, match="not a GGUF"):
        read_gguf_info(fake)


def test_import_list_verify(home: Home, tmp_path: Path) -> None:
    source = write_tiny_gguf(tmp_path / "Tiny-Model.gguf")
    entry = import_model(home, source)
    assert entry.id == "tiny-model"
    assert entry.context_length == 512
    assert entry.chat_template == "gguf"
    assert (home.root / "models" / "tiny-model.gguf").read_bytes() == source.read_bytes()
    assert import_model(home, source) == entry  # the same file again changes nothing
    catalog = load_catalog(home=home.root)
    assert set(catalog.entries) == {catalog.default, "tiny-model"}
    statuses = {s.entry.id: s for s in model_statuses(home, verify=True)}
    assert statuses["tiny-model"].verified is True
    assert statuses[catalog.default].is_default and statuses[catalog.default].verified is True


def test_cli_round_trip_and_tamper_detection(home: Home, tmp_path: Path) -> None:
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    imported = run_cli("models", "import", source, "--home", home.root, "--id", "tiny")
    assert imported.exit_code == 0, imported.output
    listed = run_cli("models", "list", "--home", home.root)
    lines = listed.output.splitlines()
    assert any(line.startswith("* smollm2") for line in lines)
    assert any(line.startswith("  tiny\t") and line.endswith("present") for line in lines)
    assert run_cli("models", "verify", "--home", home.root).exit_code == 0
    stored = home.root / "models" / "tiny.gguf"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x01
    stored.write_bytes(bytes(data))
    verify = run_cli("models", "verify", "--home", home.root)
    assert verify.exit_code == 1
    assert "MISMATCH\ttiny" in verify.output
    assert "error: model_hash_mismatch: tiny" in verify.output


def test_a_file_claiming_a_catalog_model_with_another_hash_is_refused(
    home: Home, tmp_path: Path
) -> None:
    impostor = write_tiny_gguf(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(ModelHashMismatch):
        import_model(home, impostor)
    with pytest.raises(ModelHashMismatch):
        import_model(home, write_tiny_gguf(tmp_path / "x.gguf"), "smollm2-135m-instruct-q4_1")
    assert not (home.root / "models" / "imported.json").exists()


@pytest.mark.parametrize(
    "content", [b"", b"GGUF", b"GGUF\x03\x00\x00\x00truncated", b"\x7fELF binary"]
)
def test_bad_files_are_refused_with_a_clear_error(
    home: Home, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelFileInvalid):
        import_model(home, bad)
    assert list((home.root / "models").iterdir()) == []
    result = run_cli("models", "import", bad, "--home", home.root)
    assert result.exit_code == 1
    assert result.output.startswith("error: model_file_invalid:")


def test_bundled_model_metadata() -> None:
    path = load_catalog().default_entry().path()
    assert path is not None
    info = read_gguf_info(path)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.has_chat_template
