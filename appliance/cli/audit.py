"""Audit log commands: ``enclave audit verify`` and ``enclave audit export``."""

from __future__ import annotations

import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    reporting,
    unsealed_appliance,
)
from appliance.errors import AuditChainBroken, InvalidRequest


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


audit_app = typer.Typer(
    name="audit", help="Verify and export the tamper-evident audit log.", no_args_is_help=True
)


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{option} is not an ISO 8601 date or time: {value!r}.") from exc


@audit_app.command()
def verify(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """Check every entry's hash and the chain links; exit 1 naming the first bad entry."""
    with reporting():
        with unsealed_appliance(home, passphrase_file) as appliance:
            result = appliance.audit.verify()
        if not result.ok:
            raise AuditChainBroken(f"entry {result.first_bad}: {result.reason}")
        typer.echo(f"ok {result.count} entries")


@audit_app.command()
def export(
    home: HomeOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or json (an array).")] = (
        ExportFormat.JSON
    ),
    since: Annotated[
        str | None, typer.Option("--since", help="Entries at or after this ISO time (UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Entries before this ISO time (UTC).")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (mode 0600), not stdout.")
    ] = None,
) -> None:
    """Export audit entries as CSV or JSON, streamed (the file is in clear: keep it safe)."""
    with reporting():
        start, end = _moment(since, "--since"), _moment(until, "--until")
        with unsealed_appliance(home, passphrase_file) as appliance:
            chunks = appliance.audit.export(
                fmt.value, since=start, until=end, actor=actor, action=action
            )
            if out is None:
                for chunk in chunks:
                    typer.echo(chunk, nl=False)
                return
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                for chunk in chunks:
                    f.write(chunk)
        typer.echo(f"audit log exported to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    app.add_typer(audit_app)
