"""User commands: ``enclave users add`` and ``enclave users list``.

With the server stopped they open the home directly (passphrase needed). While a server holds
the home, ``users add`` goes through its API instead, authenticated by an admin API key
(``--api-key-file``, a key with the ``admin`` scope).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    locked_appliance,
    post_to_server,
    read_passphrase,
    reporting,
    server_url,
    settings_for,
)
from appliance.errors import HomeLocked
from appliance.identity.models import Role
from appliance.identity.users import UserService
from appliance.lifecycle import Appliance

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
    api_key_file: Annotated[
        Path | None,
        typer.Option("--api-key-file", help="Admin API key, used when a server holds the home."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="The running server (default: HOST:PORT settings).")
    ] = None,
) -> None:
    """Create a user (the password must pass the policy)."""
    with reporting():
        password = read_passphrase(password_file, "Password for the new user", confirm=True)
        settings = settings_for(home)
        appliance = Appliance(settings)
        try:
            appliance.home.lock()
        except HomeLocked:
            if api_key_file is None:
                raise HomeLocked(
                    "A server is using this home: pass --api-key-file with an admin API key "
                    "to create the user through its API, or stop the server."
                ) from None
            target = server_url(settings, url)
            body = {
                "username": username,
                "password": password,
                "role": role,
                "display_name": display_name,
            }
            created = post_to_server(target, "/api/v1/users", body, read_passphrase(api_key_file))
            typer.echo(
                f"created user {created['username']} ({created['role']}, id {created['id']}) via {target}"
            )
            return
        try:
            appliance.unseal(read_passphrase(passphrase_file), actor="cli")
            services = appliance.services
            user = services.audited(
                lambda: services.users.create_user(username, password, role, display_name),
                action="user.create",
                actor="cli",
                target=lambda u: f"user:{u.id}",
                details={"role": role},
            )
        finally:
            appliance.seal()
            appliance.home.unlock()
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
