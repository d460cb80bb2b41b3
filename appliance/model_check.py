"""The first-run model check: is the catalog's default (bundled) model present and loadable?

Cheap enough to run while the administrator waits (no generation): the file is located, its
GGUF header is read, its size is compared with the catalog, the free memory is compared with what
loading needs, and the hub opens the model's tokenizer (llama.cpp reads the vocabulary, not the
weights). The sha256 is not recomputed here (``enclave models verify`` does that).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import EnclaveError, ModelFileInvalid
from appliance.model_files import catalog_for, resolve_model_file
from appliance.runs.hub import LOAD_OVERHEAD_BYTES, ModelHub, available_memory_bytes
from engine.agents import ModelChoice
from models import CatalogEntry
from models.gguf_meta import GgufError, read_gguf_info


@dataclass
class ModelCheck:
    """What the check found for one model: ``ok`` when every step passed."""

    model_id: str
    name: str
    context_length: int
    size_mib: int
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(passed for _, passed, _ in self.steps)

    def add(self, step: str, passed: bool, detail: str) -> bool:
        self.steps.append((step, passed, detail))
        return passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "name": self.name,
            "ok": self.ok,
            "steps": [{"step": s, "ok": p, "detail": d} for s, p, d in self.steps],
        }


def _file_steps(check: ModelCheck, entry: CatalogEntry, hub: ModelHub) -> bool:
    try:
        path = resolve_model_file(entry, hub.home)
    except EnclaveError as exc:
        return check.add("file", False, exc.message)
    size = path.stat().st_size
    if not check.add(
        "file",
        size == entry.size_bytes,
        f"{path.name}, {size // 2**20} MiB"
        if size == entry.size_bytes
        else f"{path.name} is {size} bytes; the catalog expects {entry.size_bytes}",
    ):
        return False
    try:
        info = read_gguf_info(path)
    except GgufError as exc:
        return check.add("format", False, str(exc))
    return check.add("format", True, f"GGUF, architecture {info.architecture}")


async def check_default_model(hub: ModelHub) -> ModelCheck:
    """Check the catalog's default model (see the module docstring)."""
    catalog = catalog_for(hub.home)
    entry = catalog.entries.get(catalog.default)
    if entry is None:
        raise ModelFileInvalid(f"The catalog's default model {catalog.default!r} is not listed.")
    check = ModelCheck(
        entry.id, entry.display_name, entry.context_length, entry.size_bytes // 2**20
    )
    if not await asyncio.to_thread(_file_steps, check, entry, hub):
        return check
    needed, free = entry.size_bytes + LOAD_OVERHEAD_BYTES, available_memory_bytes()
    if not check.add(
        "memory",
        free is None or free >= needed,
        f"needs about {needed // 2**20} MiB"
        + ("" if free is None else f", {free // 2**20} MiB available"),
    ):
        return check
    try:
        provider = hub.provider(ModelChoice(provider="local", model=entry.id), "model-check")
        tokens = await provider.count_tokens("Hello from Enclave.")
    except EnclaveError as exc:
        check.add("tokenizer", False, exc.message)
    except (OSError, ValueError, RuntimeError) as exc:
        check.add("tokenizer", False, f"llama.cpp could not open the model: {exc}")
    else:
        check.add("tokenizer", tokens > 0, f"llama.cpp opened it ({tokens} tokens in a test)")
    return check
