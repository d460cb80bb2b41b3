"""``enclave run``: start the appliance's web server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    reporting,
    serving_appliance,
    settings_for,
)
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
            with serving_appliance(settings, passphrase_file) as appliance:
                uvicorn.run(
                    create_app(appliance),
                    host=settings.host,
                    port=settings.port,
                    log_config=None,
                    access_log=False,
                    server_header=False,
                )
