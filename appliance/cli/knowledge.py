"""Knowledge-base maintenance: ``enclave knowledge purge`` and ``enclave knowledge orphans``."""

from __future__ import annotations

import typer

from appliance.cli.common import HomeOpt, PassphraseFileOpt, reporting, unsealed_appliance
from appliance.errors import StorageError
from appliance.knowledge.runtime import build_runtime

knowledge_app = typer.Typer(
    name="knowledge", help="Knowledge-base retention and integrity.", no_args_is_help=True
)


@knowledge_app.command()
def purge(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """Delete documents older than their base's retention (blob, chunks, FTS rows, vectors)."""
    with reporting(), unsealed_appliance(home, passphrase_file) as appliance:
        runtime = build_runtime(appliance, start_worker=False)
        removed = runtime.service.purge_expired()
        typer.echo(f"removed {removed} documents")


@knowledge_app.command()
def orphans(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """Check that no chunk, FTS row, vector or blob belongs to nothing; exit 1 if one does."""
    with reporting(), unsealed_appliance(home, passphrase_file) as appliance:
        runtime = build_runtime(appliance, start_worker=False)
        report = runtime.service.find_orphans()
        if not report.clean:
            found = {k: len(v) for k, v in vars(report).items() if v}
            raise StorageError(f"Knowledge orphans found: {found}.")
        typer.echo("ok no orphans")


def register(app: typer.Typer) -> None:
    """Add the ``knowledge`` command group."""
    app.add_typer(knowledge_app)
