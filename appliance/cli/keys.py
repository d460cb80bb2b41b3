"""Key lifecycle commands: init, unseal, passwd, rekey, keyfile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    locked_appliance,
    post_to_server,
    read_passphrase,
    reporting,
    server_url,
    settings_for,
)
from appliance.errors import HomeLocked
from appliance.lifecycle import Appliance


def _unseal_running_server(url: str, passphrase: str) -> None:
    post_to_server(url, "/api/v1/unseal", {"passphrase": passphrase})


def register(app: typer.Typer) -> None:
    """Add the key commands to ``app``."""

    @app.command()
    def init(
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
        keyfile_out: Annotated[
            Path | None,
            typer.Option(
                "--keyfile-out",
                help="Also create an unseal key file (mode 0600) for unattended start.",
            ),
        ] = None,
    ) -> None:
        """Initialise a new home: data key, vault, encrypted database and blob store."""
        with reporting():
            with locked_appliance(home, create=True) as appliance:
                appliance.initialise(
                    read_passphrase(passphrase_file, confirm=True), keyfile_out, actor="cli"
                )
            typer.echo(f"initialised {appliance.home.root}")

    @app.command()
    def unseal(
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
        url: Annotated[
            str | None,
            typer.Option(
                "--url",
                help="Unseal this running server instead (default: the one holding the home).",
            ),
        ] = None,
    ) -> None:
        """Unseal the running server, or (server stopped) verify, migrate and finish a pending rekey."""
        with reporting():
            settings = settings_for(home)
            passphrase = read_passphrase(passphrase_file)
            appliance = Appliance(settings)
            try:
                appliance.home.lock()
            except HomeLocked:
                target = server_url(settings, url)
                _unseal_running_server(target, passphrase)
                typer.echo(f"unsealed the server at {target}")
                return
            try:
                appliance.unseal(passphrase, actor="cli")
                report = appliance.readiness()
            finally:
                appliance.seal(actor="cli")
                appliance.home.unlock()
            typer.echo(
                f"unsealed {appliance.home.root}: database ok, schema "
                f"{'current' if report['checks']['migrations'] else 'behind'}"
            )

    @app.command()
    def passwd(
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
        new_passphrase_file: Annotated[
            Path | None,
            typer.Option("--new-passphrase-file", help="Read the new passphrase from this file."),
        ] = None,
    ) -> None:
        """Change the admin passphrase (re-wraps the data key; data is untouched)."""
        with reporting():
            with locked_appliance(home) as appliance:
                old = read_passphrase(passphrase_file, "Current passphrase")
                new = read_passphrase(new_passphrase_file, "New passphrase", confirm=True)
                appliance.change_passphrase(old, new, actor="cli")
            typer.echo("passphrase changed")

    @app.command()
    def rekey(
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
        keyfile: Annotated[
            Path | None,
            typer.Option(
                "--keyfile", help="The unseal key file, when the vault has one (it is re-wrapped)."
            ),
        ] = None,
    ) -> None:
        """Rotate the data key: re-encrypt the database and every blob under a new key."""
        with reporting():
            with locked_appliance(home) as appliance:
                passphrase = read_passphrase(passphrase_file)
                appliance.unseal(passphrase, actor="cli")
                keyfile = keyfile or appliance.settings.unseal_keyfile
                key_id = appliance.rekey(passphrase, keyfile, actor="cli")
            typer.echo(f"data key rotated (new key id {key_id})")

    @app.command("keyfile")
    def keyfile_cmd(
        out: Annotated[Path, typer.Option("--out", help="Where to write the new key file.")],
        home: HomeOpt = None,
        passphrase_file: PassphraseFileOpt = None,
    ) -> None:
        """Create an unseal key file (set ENCLAVE_UNSEAL_KEYFILE to it for unattended start)."""
        with reporting():
            with locked_appliance(home) as appliance:
                appliance.add_keyfile(read_passphrase(passphrase_file), out, actor="cli")
            typer.echo(f"key file written to {out} (mode 0600); keep it off shared storage")
