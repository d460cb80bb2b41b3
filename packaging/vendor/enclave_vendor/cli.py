"""``enclave-vendor``: keygen, license, voucher, list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from enclave_vendor.issuing import Issuer, generate_keypair

app = typer.Typer(
    name="enclave-vendor",
    help="Vendor tool: sign Enclave licenses and top-up vouchers (never ship it to customers).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
KeyDir = Annotated[
    Path, typer.Option("--keys", help="Folder of the vendor key pair and the issued register.")
]
Out = Annotated[Path, typer.Option("--out", help="Write the signed file here.")]


@app.command()
def keygen(keys: KeyDir) -> None:
    """Create a new Ed25519 signing key pair (the .pem public key ships with the appliance)."""
    key_id = generate_keypair(keys)
    typer.echo(f"key {key_id} written to {keys}")


@app.command()
def license(
    keys: KeyDir,
    out: Out,
    customer: Annotated[str, typer.Option(help="Customer name.")],
    tier: Annotated[str, typer.Option(help="Tier name.")] = "team",
    seats: Annotated[int, typer.Option(help="Active users allowed.")] = 10,
    feature: Annotated[list[str] | None, typer.Option(help="An entitlement (repeat).")] = None,
    days: Annotated[int, typer.Option(help="Valid for this many days from now.")] = 365,
    grace_days: Annotated[int, typer.Option(help="Grace period after expiry.")] = 14,
    credits_once: Annotated[str, typer.Option(help="Credits granted at import.")] = "0",
    credits_monthly: Annotated[str, typer.Option(help="Credits granted each month.")] = "0",
    machine_id: Annotated[
        str | None, typer.Option(help="Bind to this installation id (enclave license show).")
    ] = None,
    license_id: Annotated[
        str | None, typer.Option("--license-id", help="The license id (default: a new one).")
    ] = None,
    evaluation_days: Annotated[
        int | None,
        typer.Option(
            help="Make an evaluation license: it runs this many days from the moment an "
            "appliance starts it (once per home); --days is then how long it can be started."
        ),
    ] = None,
) -> None:
    """Issue a signed license file."""
    payload, data = Issuer(keys).issue_license(
        customer=customer,
        tier=tier,
        seats=seats,
        features=tuple(feature or ()),
        days=days,
        grace_days=grace_days,
        credits_once=credits_once,
        credits_monthly=credits_monthly,
        machine_id=machine_id,
        evaluation_days=evaluation_days,
        license_id=license_id,
    )
    out.write_bytes(data)
    typer.echo(f"license {payload.license_id} written to {out}")


@app.command()
def voucher(
    keys: KeyDir,
    out: Out,
    license_id: Annotated[str, typer.Option("--license-id", help="The license it tops up.")],
    credits: Annotated[str, typer.Option(help="Credits it adds.")],
    days: Annotated[int | None, typer.Option(help="Redeemable for this many days.")] = None,
) -> None:
    """Issue a signed single-use top-up voucher bound to one license."""
    payload, data = Issuer(keys).issue_voucher(license_id, credits, days=days)
    out.write_bytes(data)
    typer.echo(f"voucher {payload.voucher_id} ({payload.credits} credits) written to {out}")


@app.command(name="list")
def list_issued(keys: KeyDir) -> None:
    """Every license and voucher issued with these keys, one tab-separated line each."""
    for row in Issuer(keys).issued():
        payload = row["payload"]
        detail = payload.get("customer") or f"{payload.get('credits')} credits"
        typer.echo(f"{row['kind']}\t{row['id']}\t{payload.get('license_id')}\t{detail}")


def main() -> None:
    """Console entry point."""
    app()
