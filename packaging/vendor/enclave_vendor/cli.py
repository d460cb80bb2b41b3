"""``enclave-vendor``: keygen, license, voucher, list.

A refused command prints one line, ``error: <code>: <message>``, and exits 1 (a malformed
option that the parser itself refuses: exit 2); it never signs or records anything.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from enclave_vendor.errors import InvalidOption, VendorError
from enclave_vendor.issuing import MAX_DAYS, Issuer, generate_keypair

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


def fail(code: str, message: str, status: int = 1) -> NoReturn:
    """Print ``error: <code>: <message>`` on one line to stderr and exit with ``status``."""
    sys.stderr.write(f"error: {code}: {' '.join(message.split())}\n")
    raise SystemExit(status)


@contextmanager
def reporting() -> Iterator[None]:
    """A typed refusal, or a file that cannot be read or written, as the one-line error."""
    try:
        yield
    except VendorError as exc:
        fail(exc.code, exc.message)
    except OSError as exc:
        fail("storage_error", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


def writable(out: Path) -> Path:
    """``out``, checked before anything is signed: a file name in a folder that exists."""
    if out.is_dir():
        raise InvalidOption(f"--out {out} is a folder; name the file to write.")
    if not out.parent.is_dir():
        raise InvalidOption(f"--out {out}: the folder {out.parent} does not exist.")
    return out


@app.command()
def keygen(keys: KeyDir) -> None:
    """Create a new Ed25519 signing key pair (the .pem public key ships with the appliance)."""
    with reporting():
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
    min_price: Annotated[
        list[str] | None,
        typer.Option(
            "--min-price",
            help="The least the customer's admins may charge: CLASS=IN,OUT[,PER_SECOND] in "
            "credits per 1k input/output tokens (and per tool-second); CLASS is local, remote "
            "or tool (repeat).",
        ),
    ] = None,
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
    with reporting():
        payload, _ = Issuer(keys).issue_license(
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
            min_prices=parse_min_prices(min_price or []),
            out=writable(out),
        )
    typer.echo(f"license {payload.license_id} written to {out}")


def parse_min_prices(options: list[str]) -> dict[str, dict[str, str]]:
    """``--min-price local=0.01,0.02`` options as the license's ``min_prices``."""
    found: dict[str, dict[str, str]] = {}
    for option in options:
        name, sep, values = option.partition("=")
        parts = values.split(",") if sep else []
        if name not in ("local", "remote", "tool") or not 2 <= len(parts) <= 3:
            raise InvalidOption(
                f"--min-price {option!r}: write CLASS=IN,OUT[,PER_SECOND] with CLASS local, "
                "remote or tool."
            )
        if name in found:
            raise InvalidOption(f"--min-price: {name} is given twice.")
        fields = ("input_per_1k", "output_per_1k", "per_second")
        found[name] = {field: part.strip() for field, part in zip(fields, parts, strict=False)}
    return found


@app.command()
def voucher(
    keys: KeyDir,
    out: Out,
    license_id: Annotated[str, typer.Option("--license-id", help="The license it tops up.")],
    credits: Annotated[str, typer.Option(help="Credits it adds.")],
    days: Annotated[int | None, typer.Option(help="Redeemable for this many days.")] = None,
    force_unknown_license: Annotated[
        bool,
        typer.Option(
            "--force-unknown-license",
            help="Issue it although the register has no such license (a lost register).",
        ),
    ] = False,
) -> None:
    """Issue a signed single-use top-up voucher bound to one license issued with these keys."""
    with reporting():
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise InvalidOption(f"--days {days}: a voucher is redeemable 1 to {MAX_DAYS:,} days.")
        payload, _ = Issuer(keys).issue_voucher(
            license_id,
            credits,
            days=days,
            require_issued_license=not force_unknown_license,
            out=writable(out),
        )
    typer.echo(f"voucher {payload.voucher_id} ({payload.credits} credits) written to {out}")


@app.command(name="list")
def list_issued(keys: KeyDir) -> None:
    """Every license and voucher issued with these keys, one tab-separated line each."""
    with reporting():
        rows = Issuer(keys).issued()
    for row in rows:
        payload = row["payload"]
        detail = payload.get("customer") or f"{payload.get('credits')} credits"
        typer.echo(f"{row['kind']}\t{row['id']}\t{payload.get('license_id')}\t{detail}")


def main() -> None:
    """Console entry point: every refusal, the parser's included, is one line."""
    if len(sys.argv) < 2:
        app()  # no command: the help (exit 2)
    try:
        status = app(standalone_mode=False)
    except typer.TyperException as exc:  # an option the parser refuses (not a number, ...)
        fail("invalid_option", exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    raise SystemExit(status if isinstance(status, int) else 0)
