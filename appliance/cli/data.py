"""Data commands: doctor, backup, restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    locked_appliance,
    read_passphrase,
    reporting,
    settings_for,
    unsealed_appliance,
)
from appliance.doctor import Status, run_doctor
from appliance.lifecycle import Appliance
from appliance.store.backup import create_backup, restore_backup


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""

    @app.command()
    def doctor(
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
    ) -> None:
        """Check sandbox tools, model files, database, permissions and disk; explain problems."""
        with reporting():
            appliance = Appliance(settings_for(home))
            passphrase = read_passphrase(passphrase_file) if passphrase_file else None
            checks = run_doctor(appliance, passphrase)
            width = max(len(c.name) for c in checks)
            for check in checks:
                typer.echo(f"{check.status.value:<4}  {check.name:<{width}}  {check.detail}")
            failed = [c for c in checks if c.status is Status.FAIL]
            if failed:
                typer.echo(f"{len(failed)} problem(s) found", err=True)
                raise typer.Exit(1)

    @app.command()
    def backup(
        out: Annotated[Path, typer.Option("--out", help="The backup file to write.")],
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
    ) -> None:
        """Write an encrypted backup (online: works while the server runs)."""
        with reporting():
            with unsealed_appliance(home, passphrase_file) as appliance:
                dek = appliance.current_key()
                manifest = create_backup(appliance.home, appliance.db, dek, out)
            typer.echo(f"backup written to {out} ({len(manifest['files'])} files, encrypted)")

    @app.command()
    def restore(
        archive: Annotated[Path, typer.Argument(help="The backup file to restore.")],
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Replace an existing home (its data is moved to backups/pre-restore-*).",
            ),
        ] = False,
    ) -> None:
        """Restore a backup into the home (the server must be stopped)."""
        with reporting():
            with locked_appliance(home, create=True) as appliance:
                manifest = restore_backup(
                    archive, appliance.home, read_passphrase(passphrase_file), force
                )
            typer.echo(f"restored {len(manifest['files'])} files into {appliance.home.root}")
