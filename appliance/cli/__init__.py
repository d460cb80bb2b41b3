"""The ``enclave`` command. Every command takes ``--home`` and exits non-zero with a one-line
reason on failure (``error: <code>: <message>``)."""

from __future__ import annotations

import sys

import structlog
import typer

from appliance.cli.audit import register as register_audit
from appliance.cli.common import fail
from appliance.cli.credits import register as register_credits
from appliance.cli.data import register as register_data
from appliance.cli.desktop import register as register_desktop
from appliance.cli.keys import register as register_keys
from appliance.cli.knowledge import register as register_knowledge
from appliance.cli.license import register as register_license
from appliance.cli.models import register as register_models
from appliance.cli.sandbox import register as register_sandbox
from appliance.cli.serve import register as register_serve
from appliance.cli.service import register as register_service
from appliance.cli.users import register as register_users
from appliance.errors import EnclaveError
from appliance.logs import configure_logging
from appliance.version import __version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"enclave {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="enclave",
    help="Enclave: the offline AI agent appliance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Enclave: the offline AI agent appliance."""
    # A command's outcome is its one line (or its error line); only errors are logged to
    # stderr besides. `run` reconfigures logging for the server.
    configure_logging("ERROR")


register_serve(app)
register_keys(app)
register_data(app)
register_audit(app)
register_users(app)
register_models(app)
register_license(app)
register_credits(app)
register_sandbox(app)
register_knowledge(app)
register_service(app)
register_desktop(app)


def main() -> None:
    """Console entry point."""
    try:
        app(standalone_mode=True)
    except EnclaveError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # A bug, not bad input: still one line for the operator; the traceback at DEBUG.
        structlog.get_logger(__name__).debug("cli.crash", exc_info=True)
        fail(EnclaveError(f"{exc.__class__.__name__}: {exc}"))


__all__ = ["app", "main"]
