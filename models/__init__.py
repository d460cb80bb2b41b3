"""The model catalog (``catalog.toml``) and where each model's file lives.

Nothing here downloads: a model file is either inside an installed package or imported into
the Enclave home.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from models.package_data import package_dir

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
# Models imported into a home are listed beside their files (plain metadata, no secrets).
IMPORTED_NAME = "imported.json"


class CatalogError(ValueError):
    """The catalog file is malformed or names an unknown model."""


@dataclass(frozen=True)
class CatalogEntry:
    """One model the appliance knows about."""

    id: str
    display_name: str
    locator: str
    sha256: str
    size_bytes: int
    context_length: int
    chat_template: str
    licence: str
    price_class: str

    def path(self, home: Path | None = None) -> Path | None:
        """Where the file should be, or None when its package is not installed."""
        kind, _, rest = self.locator.partition(":")
        if kind == "package":
            package, _, name = rest.partition("/")
            folder = package_dir(package)
            return None if folder is None else folder / name
        if kind == "home":
            if home is None:
                return None
            return home / "models" / rest
        raise CatalogError(f"model {self.id}: unknown locator kind {kind!r}")


@dataclass(frozen=True)
class Catalog:
    """All catalog entries and the default model id."""

    default: str
    entries: dict[str, CatalogEntry]

    def default_entry(self) -> CatalogEntry:
        """The model used when an agent names none."""
        return self.entries[self.default]


def load_catalog(path: Path = CATALOG_PATH, home: Path | None = None) -> Catalog:
    """Parse ``catalog.toml`` plus, with ``home``, the models imported into it; a malformed
    file raises :class:`CatalogError`."""
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
        entries = {
            model_id: CatalogEntry(id=model_id, **fields)
            for model_id, fields in doc.get("models", {}).items()
        }
        default = doc["default"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise CatalogError(f"model catalog {path} is invalid: {exc}") from exc
    if default not in entries:
        raise CatalogError(f"model catalog {path}: default {default!r} is not an entry")
    if home is not None:
        for entry in load_imported(home):
            entries.setdefault(entry.id, entry)
    return Catalog(default, entries)


def imported_path(home: Path) -> Path:
    """Where a home lists its imported models."""
    return home / "models" / IMPORTED_NAME


def load_imported(home: Path) -> list[CatalogEntry]:
    """The models imported into ``home`` (none when the list does not exist yet)."""
    path = imported_path(home)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text("utf-8"))
        names = {f.name for f in fields(CatalogEntry)}
        return [CatalogEntry(**{k: v for k, v in row.items() if k in names}) for row in rows]
    except (OSError, ValueError, TypeError) as exc:
        raise CatalogError(f"{path} is invalid: {exc}") from exc


def imported_rows(entries: list[CatalogEntry]) -> bytes:
    """The imported-model list as the bytes of ``imported.json``."""
    return json.dumps([asdict(e) for e in entries], indent=2).encode() + b"\n"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (model files are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
