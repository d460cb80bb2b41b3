"""License commands: ``enclave license import FILE``, ``enclave license evaluate`` and
``enclave license show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import HomeOpt, PassphraseFileOpt, reporting, unsealed_appliance
from appliance.errors import InvalidRequest
from appliance.licensing.document import MAX_FILE_BYTES
from appliance.licensing.errors import LicenseFileTooLarge

license_app = typer.Typer(
    name="license", help="Import and show the signed license.", no_args_is_help=True
)


@license_app.command(name="import")
def import_license(
    file: Annotated[Path, typer.Argument(help="The license file from the vendor.")],
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Verify a license file (signature, dates, machine) and make it the license in force."""
    with reporting():
        data = _read_license_file(file)
        with unsealed_appliance(home, passphrase_file) as appliance:
            services = appliance.services
            licensing = services.metering.license
            lic = services.audited(
                lambda: licensing.import_license(data),
                action="license.import",
                actor="cli",
                target=lambda imported: f"license:{imported.license_id}",
                details=lambda imported: {"tier": imported.tier, "seats": imported.seats},
            )
            seats = licensing.seat_report()
        typer.echo(
            f"license {lic.license_id} imported: {lic.customer}, tier {lic.tier}, "
            f"{lic.seats} seats, expires {lic.expires_at.date().isoformat()}"
        )
        if seats["over_seats"]:
            typer.echo(f"warning: {seats['seats_message']}", err=True)


def _read_license_file(file: Path) -> bytes:
    """The file's bytes, reading at most one byte past the size limit (so a huge file or a
    device such as /dev/zero is refused at once, before the appliance is unsealed)."""
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the license file {file}.") from exc
    if len(data) > MAX_FILE_BYTES:
        raise LicenseFileTooLarge(
            f"{file} is larger than {MAX_FILE_BYTES:,} bytes: it is not a license file."
        )
    return data


@license_app.command()
def evaluate(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """Start the evaluation license shipped with Enclave (once per home, only where no license
    was ever imported); it runs for its number of days from now."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            services = appliance.services
            lic = services.audited(
                services.metering.license.start_evaluation,
                action="license.evaluation",
                actor="cli",
                target=lambda started: f"license:{started.license_id}",
                details=lambda started: {"days": started.evaluation_days},
            )
        typer.echo(
            f"evaluation {lic.license_id} started: {lic.seats} seats, "
            f"expires {lic.expires_at.date().isoformat()}"
        )


@license_app.command()
def show(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """The license in force, its state, seats used and this appliance's machine id (JSON)."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            metering = appliance.services.metering
            body = metering.license.status().as_dict()
            body["machine_id"] = metering.license.machine_id
            body.update(metering.license.seat_report())
        typer.echo(json.dumps(body, indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Add the ``license`` command group to ``app``."""
    app.add_typer(license_app)
