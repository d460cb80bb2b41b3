"""``enclave sandbox exec|backends``: try the sandbox policy by hand (no passphrase needed:
a run uses no data, only an empty workspace)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import HomeOpt, reporting, settings_for
from appliance.sandboxing import as_enclave_error, sandbox_policy
from sandbox import Sandbox, SandboxError, available_backends

sandbox_app = typer.Typer(
    name="sandbox", help="Try commands under the tool sandbox's policy.", no_args_is_help=True
)


@sandbox_app.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
    home: HomeOpt = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="firejail or bwrap (default: the strongest).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Wall-clock limit in seconds.")
    ] = None,
    memory: Annotated[int | None, typer.Option("--memory", help="Memory limit in MB.")] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Allow TCP to HOST:PORT ([IPv6]:PORT); repeatable (network=allowlist).",
        ),
    ] = None,
) -> None:
    """Run CMD ARGS... under the default policy in an empty workspace; print the result as
    JSON (exit code, stdout, stderr, truncation flags, limit hit, resource use)."""
    with reporting():
        settings = settings_for(home)
        policy = sandbox_policy(settings, wall_seconds=timeout, memory_mb=memory)
        chosen = backend or settings.sandbox_backend
        try:
            if allow:
                policy = replace(policy, network="allowlist", network_allowlist=tuple(allow))
            with tempfile.TemporaryDirectory(prefix="enclave-sandbox-") as root:
                sandbox = Sandbox(policy, chosen, workspace_root=Path(root))
                result = asyncio.run(sandbox.run(list(command)))
        except SandboxError as exc:
            raise as_enclave_error(exc) from exc
        typer.echo(json.dumps(result.to_dict(), indent=2))


@sandbox_app.command("backends")
def backends_command() -> None:
    """One line per backend: name, usable or not, version, and the reason."""
    with reporting():
        for info in available_backends(refresh=True):
            state = "ok" if info.usable else "unusable"
            typer.echo(f"{info.name}\t{state}\t{info.version or '-'}\t{info.detail}")


def register(app: typer.Typer) -> None:
    """Add the ``sandbox`` command group to ``app``."""
    app.add_typer(sandbox_app)
