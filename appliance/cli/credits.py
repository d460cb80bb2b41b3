"""Credit commands: ``enclave credits verify``, ``balance``, ``redeem`` and ``statement``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import HomeOpt, PassphraseFileOpt, reporting, unsealed_appliance
from appliance.credits.errors import LedgerBroken
from appliance.credits.metering import verify_ledger
from appliance.errors import InvalidRequest

credits_app = typer.Typer(
    name="credits",
    help="Verify the credit ledger, show the balance, redeem vouchers, write statements.",
    no_args_is_help=True,
)


@credits_app.command()
def verify(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """Check the ledger's hash chain and replayed balances; exit 1 naming the first bad entry."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            # Not through the services: building them runs the license check and the expiry
            # sweep, which could append to the ledger being verified.
            result = verify_ledger(appliance.db)
        if not result.ok:
            raise LedgerBroken(f"entry {result.first_bad}: {result.reason}")
        typer.echo(f"ok {result.count} entries")


@credits_app.command()
def balance(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """The organisation's balance, reserved and available credits (JSON)."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            body = appliance.services.metering.meter.balance().as_dict()
        typer.echo(json.dumps(body, indent=2, sort_keys=True))


@credits_app.command()
def redeem(
    file: Annotated[Path, typer.Argument(help="The top-up voucher file from the vendor.")],
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Redeem a signed single-use top-up voucher."""
    with reporting():
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InvalidRequest(f"Cannot read the voucher file {file}.") from exc
        with unsealed_appliance(home, passphrase_file) as appliance:
            services = appliance.services
            metering = services.metering
            voucher = metering.license.verify_voucher(data)
            after = services.audited(
                lambda: metering.meter.redeem(voucher, "cli"),
                action="credits.voucher_redeem",
                actor="cli",
                target=f"voucher:{voucher.voucher_id}",
                details={"credits": voucher.credits},
            )
        typer.echo(
            f"voucher {voucher.voucher_id} redeemed: {after.as_dict()['available']:g} available"
        )


@credits_app.command()
def statement(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM (UTC).")],
    out: Annotated[Path, typer.Option("--out", help="Write the CSV here (mode 0600).")],
    group_id: Annotated[int | None, typer.Option("--group-id", help="Only this group.")] = None,
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """The month's usage per group, user and model as CSV, for internal chargeback."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            text = appliance.services.metering.analytics.statement(month, group_id)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        typer.echo(f"statement for {month} written to {out}")


def register(app: typer.Typer) -> None:
    """Add the ``credits`` command group to ``app``."""
    app.add_typer(credits_app)
