"""``enclave run``: start the appliance's web server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    read_passphrase,
    reporting,
    settings_for,
)
from appliance.lifecycle import Appliance
from appliance.logs import configure_logging
from appliance.web import create_app


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command()
    def run(
        home: HomeOpt = None,
        host: Annotated[
            str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")
        ] = None,
        port: Annotated[int | None, typer.Option("--port", help="TCP port (default 8080).")] = None,
        passphrase_file: PassphraseFileOpt = None,
    ) -> None:
        """Start the appliance; it stays sealed until unsealed (passphrase file, key file, or UI)."""
        with reporting():
            settings = settings_for(home, host=host, port=port)
            appliance = Appliance(settings)
            appliance.home.ensure()
            configure_logging(
                settings.log_level,
                appliance.home.logs_dir,
                settings.log_max_bytes,
                settings.log_backups,
            )
            appliance.home.lock()
            try:
                if passphrase_file is not None:
                    appliance.unseal(read_passphrase(passphrase_file))
                web = create_app(appliance)
                uvicorn.run(
                    web,
                    host=settings.host,
                    port=settings.port,
                    log_config=None,
                    access_log=False,
                    server_header=False,
                )
            finally:
                appliance.seal()
                appliance.home.unlock()
