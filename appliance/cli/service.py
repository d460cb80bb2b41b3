"""``enclave service install``: run Enclave as a systemd service under a dedicated user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import reporting
from appliance.errors import InvalidRequest, StorageError
from appliance.service_unit import UNIT_DIR, UNIT_NAME, ServiceSpec, render_unit
from appliance.store.files import atomic_write_bytes
from sandbox import available_backends

service_app = typer.Typer(
    name="service", help="Run Enclave as a systemd service.", no_args_is_help=True
)


def default_executable() -> Path:
    """The ``enclave`` program this command runs from: the bundle's binary when frozen, else
    the console script beside the venv's Python."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve()
    script = Path(sys.executable).parent / "enclave"
    return script if script.exists() else Path(shutil.which("enclave") or script)


def default_backend() -> str:
    """The strongest sandbox backend usable on this machine (bwrap when none is)."""
    for info in available_backends():
        if info.usable:
            return "firejail" if info.name == "firejail" else "bwrap"
    return "bwrap"


@service_app.command("install")
def install_command(
    user: Annotated[str, typer.Option("--user", help="Dedicated system account.")] = "enclave",
    home: Annotated[Path, typer.Option("--home", help="Data directory of the service.")] = Path(
        "/var/lib/enclave"
    ),
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    keyfile: Annotated[
        Path | None,
        typer.Option("--keyfile", help="Unseal key file for unattended start (mode 0600)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Sandbox backend: bwrap or firejail.")
    ] = None,
    executable: Annotated[
        Path | None, typer.Option("--exec", help="The enclave program (default: this one).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the unit; change nothing.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the unit to this file only.")
    ] = None,
) -> None:
    """Write the systemd unit; as root (without --dry-run/--output) also create the user and
    the data directory, then enable the service."""
    with reporting():
        spec = ServiceSpec(
            executable=(executable or default_executable()).absolute(),
            home=home.absolute(),
            user=user,
            host=host,
            port=port,
            keyfile=keyfile.absolute() if keyfile is not None else None,
            backend=_backend_name(backend) if backend else default_backend(),
        )
        text = render_unit(spec)
        if dry_run:
            typer.echo(text, nl=False)
            return
        if output is not None:
            atomic_write_bytes(output, text.encode(), mode=0o644)
            typer.echo(f"wrote {output}")
            return
        _install_system_wide(spec, text)


def _backend_name(value: str) -> str:
    return "bwrap" if value in ("bubblewrap", "bwrap") else value


def _install_system_wide(spec: ServiceSpec, text: str) -> None:
    if os.geteuid() != 0:
        raise InvalidRequest(
            "Installing the service needs root; use --dry-run or --output FILE to see the unit."
        )
    if shutil.which("systemctl") is None:
        raise InvalidRequest("systemctl is not installed: use --output FILE and install by hand.")
    if not _run(["getent", "passwd", spec.user], ok_codes=(0, 2)):
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                str(spec.home),
                "--shell",
                "/usr/sbin/nologin",
                spec.user,
            ]
        )
    spec.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.chown(spec.home, user=spec.user, group=spec.user)
    spec.home.chmod(0o700)
    unit = UNIT_DIR / UNIT_NAME
    atomic_write_bytes(unit, text.encode(), mode=0o644)
    _run(["systemctl", "daemon-reload"])
    _run(["systemctl", "enable", UNIT_NAME])
    typer.echo(f"installed {unit}; start it with: systemctl start {UNIT_NAME}")


def _run(argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> bool:
    """Run a system tool; True when it exited 0 (other ``ok_codes`` return False)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"{argv[0]} failed: {exc}") from exc
    if done.returncode not in ok_codes:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise StorageError(
            f"{' '.join(argv[:2])} failed: {reason[-1] if reason else done.returncode}"
        )
    return done.returncode == 0


def register(app: typer.Typer) -> None:
    """Add ``service`` to ``app``."""
    app.add_typer(service_app)
