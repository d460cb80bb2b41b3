"""Model files on disk: locate, verify (sha256) and import GGUF files into a home.

Nothing is ever downloaded: a model is either inside an installed package (the bundled
default) or a file an administrator imports from local media.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import (
    InvalidRequest,
    ModelFileInvalid,
    ModelFileMissing,
    ModelHashMismatch,
)
from appliance.home import Home
from appliance.store.files import atomic_write_bytes, fsync_dir, storage_error
from models import (
    Catalog,
    CatalogEntry,
    CatalogError,
    imported_rows,
    load_catalog,
    load_imported,
    sha256_file,
)
from models.gguf_meta import GgufError, read_gguf_info

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


@dataclass(frozen=True)
class ModelStatus:
    """One catalog model as ``models list``/``verify`` report it."""

    entry: CatalogEntry
    is_default: bool
    path: Path | None
    present: bool
    verified: bool | None  # None: not checked


def catalog_for(home: Home) -> Catalog:
    """The bundled catalog plus the models imported into ``home``."""
    try:
        return load_catalog(home=home.root)
    except CatalogError as exc:
        raise ModelFileInvalid(str(exc)) from exc


def resolve_model_file(entry: CatalogEntry, home: Home) -> Path:
    """The model's file on disk, or :class:`ModelFileMissing` saying how to get it back."""
    path = entry.path(home.root)
    if path is None or not path.is_file():
        raise ModelFileMissing(
            f"Model {entry.id}: file not installed ({entry.locator}); reinstall with `make run` "
            "or import the GGUF file."
        )
    return path


def model_statuses(home: Home, verify: bool = False) -> list[ModelStatus]:
    """Every catalog model: where its file is, and (``verify``) whether its sha256 matches."""
    catalog = catalog_for(home)
    statuses = []
    for entry in catalog.entries.values():
        path = entry.path(home.root)
        present = path is not None and path.is_file()
        verified = (sha256_file(path) == entry.sha256) if verify and present and path else None
        statuses.append(ModelStatus(entry, entry.id == catalog.default, path, present, verified))
    return statuses


def import_model(
    home: Home,
    source: Path,
    model_id: str | None = None,
    display_name: str | None = None,
    licence: str | None = None,
    price_class: str = "local-small",
) -> CatalogEntry:
    """Copy a GGUF file into ``home/models`` and list it. The file's header is read (never its
    extension trusted); a file claiming a catalog id or name whose sha256 differs is refused;
    importing the same file again changes nothing."""
    if not source.is_file():
        raise InvalidRequest(f"{source} is not a file.")
    try:
        info = read_gguf_info(source)
    except GgufError as exc:
        raise ModelFileInvalid(str(exc)) from exc
    digest = sha256_file(source)
    chosen = model_id or _slug(source.stem)
    if not _ID.match(chosen):
        raise InvalidRequest(f"Model id {chosen!r}: use 2–63 of a-z, 0-9, '.', '_', '-'.")
    catalog = catalog_for(home)
    for entry in catalog.entries.values():
        same_name = entry.id == chosen or Path(entry.locator.partition(":")[2]).name == source.name
        if same_name and entry.sha256 != digest:
            raise ModelHashMismatch(
                f"{source.name} claims to be catalog model {entry.id}, but its sha256 "
                f"{digest[:12]}… differs from the catalog's {entry.sha256[:12]}…; refusing it."
            )
        if entry.sha256 == digest:
            return entry
    entry = CatalogEntry(
        id=chosen,
        display_name=display_name or info.name or chosen,
        locator=f"home:{chosen}.gguf",
        sha256=digest,
        size_bytes=source.stat().st_size,
        context_length=info.context_length or 2048,
        chat_template="gguf" if info.has_chat_template else "none",
        licence=licence or info.licence or "unknown",
        price_class=price_class,
    )
    target = home.root / "models" / f"{chosen}.gguf"
    _copy_atomically(source, target, digest)
    atomic_write_bytes(
        home.root / "models" / "imported.json",
        imported_rows([*load_imported(home.root), entry]),
        mode=0o600,
    )
    return entry


def _slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:63] or "model"


def _copy_atomically(source: Path, target: Path, digest: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        if sha256_file(tmp) != digest:
            raise ModelFileInvalid(f"{source.name} changed while it was being copied; try again.")
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, f"copy {source.name} into the home") from exc
    except ModelFileInvalid:
        tmp.unlink(missing_ok=True)
        raise
