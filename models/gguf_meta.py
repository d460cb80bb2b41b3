"""What a GGUF file says about itself (architecture, context length, chat template), read with
the ``gguf`` package. Nothing is executed and nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"


class GgufError(ValueError):
    """The file is not a readable GGUF model."""


@dataclass(frozen=True)
class GgufInfo:
    """The metadata Enclave uses from a GGUF header."""

    architecture: str
    name: str | None
    context_length: int | None
    has_chat_template: bool
    licence: str | None


def is_gguf(path: Path) -> bool:
    """Whether the file starts with the GGUF magic bytes (never trust the extension)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf_info(path: Path) -> GgufInfo:
    """Parse the header of ``path``; :class:`GgufError` if it is not a valid GGUF file."""
    if not is_gguf(path):
        raise GgufError(f"{path.name} is not a GGUF model file (wrong magic bytes).")
    from gguf import GGUFReader  # heavy import (numpy), only when a model is inspected

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise GgufError(f"{path.name} is a damaged GGUF file: {exc}") from exc

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    architecture = field("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise GgufError(f"{path.name} has no general.architecture; not a usable model.")
    context = field(f"{architecture}.context_length")
    name, licence = field("general.name"), field("general.license")
    return GgufInfo(
        architecture=architecture,
        name=name if isinstance(name, str) else None,
        context_length=int(context) if isinstance(context, int) else None,
        has_chat_template=isinstance(field("tokenizer.chat_template"), str),
        licence=licence if isinstance(licence, str) else None,
    )
