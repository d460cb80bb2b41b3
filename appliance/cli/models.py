"""``enclave models list|verify|import``: the model catalog of a home (no passphrase needed:
model files and their list hold no secrets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import HomeOpt, reporting, settings_for
from appliance.errors import ModelFileMissing, ModelHashMismatch
from appliance.home import Home
from appliance.model_files import import_model, model_statuses

models_app = typer.Typer(
    name="models", help="List, verify and import GGUF models.", no_args_is_help=True
)


def _home(home: Path | None) -> Home:
    return Home(settings_for(home).home)


@models_app.command("list")
def list_models(home: HomeOpt = None) -> None:
    """One line per model: default mark, id, name, context, size, licence, file state."""
    with reporting():
        for status in model_statuses(_home(home)):
            entry = status.entry
            mark = "*" if status.is_default else " "
            state = "present" if status.present else "MISSING"
            size_mb = entry.size_bytes / 1_000_000
            typer.echo(
                f"{mark} {entry.id}\t{entry.display_name}\tctx {entry.context_length}\t"
                f"{size_mb:.0f} MB\t{entry.licence}\t{state}"
            )


@models_app.command("verify")
def verify_models(home: HomeOpt = None) -> None:
    """Check every model file's sha256 against the catalog; exit 1 on a mismatch or a missing
    default model."""
    with reporting():
        statuses = model_statuses(_home(home), verify=True)
        for status in statuses:
            result = {True: "ok", False: "MISMATCH", None: "missing"}[status.verified]
            typer.echo(f"{result}\t{status.entry.id}\t{status.path or status.entry.locator}")
        bad = [s for s in statuses if s.verified is False]
        if bad:
            raise ModelHashMismatch(
                f"{bad[0].entry.id}: the file's sha256 does not match the catalog."
            )
        missing_default = [s for s in statuses if s.is_default and not s.present]
        if missing_default:
            raise ModelFileMissing(
                f"The default model {missing_default[0].entry.id} is not installed."
            )


@models_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="A GGUF model file on local media.")],
    home: HomeOpt = None,
    model_id: Annotated[
        str | None, typer.Option("--id", help="Catalog id (default: from the file name).")
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name shown to users.")
    ] = None,
    licence: Annotated[
        str | None, typer.Option("--licence", help="Licence (default: from the file).")
    ] = None,
) -> None:
    """Import a GGUF file into the home: its header is read, its sha256 recorded."""
    with reporting():
        target = _home(home)
        target.ensure()
        entry = import_model(target, file, model_id, display_name, licence)
        typer.echo(
            f"imported {entry.id} ({entry.display_name}, ctx {entry.context_length}, "
            f"chat template: {entry.chat_template}, sha256 {entry.sha256[:12]}…)"
        )


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to ``app``."""
    app.add_typer(models_app)
