"""User commands: ``enclave users add`` and ``enclave users list`` (server stopped)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    locked_appliance,
    read_passphrase,
    reporting,
)
from appliance.identity.models import Role
from appliance.identity.users import UserService

users_app = typer.Typer(name="users", help="Manage user accounts.", no_args_is_help=True)

ROLE_HELP = f"One of: {', '.join(r.value for r in Role)}."


@users_app.command("add")
def add(
    username: Annotated[str, typer.Option("--username", help="3–64 of letters, digits, . _ - @.")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
    home: HomeOpt = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Read the new user's password from this file."),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name shown for the user.")
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Create a user (the password must pass the policy)."""
    with reporting():
        with locked_appliance(home) as appliance:
            passphrase = read_passphrase(passphrase_file)
            password = read_passphrase(password_file, "Password for the new user", confirm=True)
            appliance.unseal(passphrase, actor="cli")
            user = UserService(appliance.db).create_user(username, password, role, display_name)
            appliance.audit.record(
                action="user.create", actor="cli", target=user.username, details={"role": role}
            )
        typer.echo(f"created user {user.username} ({user.role}, id {user.id})")


@users_app.command("list")
def list_users(home: HomeOpt = None, passphrase_file: PassphraseFileOpt = None) -> None:
    """List users: id, username, role, state, display name."""
    with reporting():
        with locked_appliance(home) as appliance:
            appliance.unseal(read_passphrase(passphrase_file), actor="cli")
            users = UserService(appliance.db).list_users()
        for user in users:
            state = "disabled" if user.disabled else "enabled"
            typer.echo(
                "\t".join(
                    [
                        str(user.id),
                        user.username,
                        user.role,
                        state,
                        " ".join((user.display_name or "").split()),
                    ]
                )
            )


def register(app: typer.Typer) -> None:
    """Add the ``users`` command group to ``app``."""
    app.add_typer(users_app)
