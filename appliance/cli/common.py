"""Shared CLI options and helpers: settings from flags, passphrases from files, one-line errors."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError

from appliance.errors import (
    EnclaveError,
    HomeLocked,
    InvalidRequest,
    ServerRejected,
    StorageError,
)
from appliance.lifecycle import Appliance
from appliance.logs import configure_logging
from appliance.settings import EnclaveSettings

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Enclave home directory (default: $ENCLAVE_HOME or ~/.local/share/enclave)."
    ),
]
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file", help="Read the admin passphrase from this file (first line)."
    ),
]


def fail(exc: EnclaveError) -> NoReturn:
    """Print ``error: <code>: <message>`` on one line to stderr and exit 1."""
    message = " ".join(exc.message.split())
    sys.stderr.write(f"error: {exc.code}: {message}\n")
    raise SystemExit(1)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn a typed error inside a command into the one-line reason and exit status 1."""
    try:
        yield
    except EnclaveError as exc:
        fail(exc)
    except OSError as exc:
        fail(StorageError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        fail(InvalidRequest(f"Invalid setting {where}: {first.get('msg')}."))


@contextmanager
def locked_appliance(home: Path | None, create: bool = False) -> Iterator[Appliance]:
    """An appliance holding the home lock (key and data changes must not race a running
    server); sealed and unlocked again on the way out, whatever happened."""
    appliance = Appliance(settings_for(home))
    if create:
        appliance.home.ensure()
    appliance.home.lock()
    try:
        yield appliance
    finally:
        appliance.seal(actor="cli")
        appliance.home.unlock()


@contextmanager
def serving_appliance(
    settings: EnclaveSettings, passphrase_file: Path | None
) -> Iterator[Appliance]:
    """The appliance a server process runs (``run``, ``desktop``): its home created, logging to
    the home's rotated logs, the home lock held, unsealed from ``passphrase_file`` when given
    (else it waits sealed for the UI, the API or the key file). Sealed and unlocked on the way
    out, whatever happened."""
    appliance = Appliance(settings)
    appliance.home.ensure()
    configure_logging(
        settings.log_level, appliance.home.logs_dir, settings.log_max_bytes, settings.log_backups
    )
    appliance.home.lock()
    try:
        if passphrase_file is not None:
            appliance.unseal(read_passphrase(passphrase_file))
        yield appliance
    finally:
        appliance.seal()
        appliance.home.unlock()


@contextmanager
def unsealed_appliance(home: Path | None, passphrase_file: Path | None) -> Iterator[Appliance]:
    """The home unsealed for one command, also while a server runs (reads and the online
    backup API cope with that; writers queue on the database's write lock). Sealed again and
    unlocked on the way out."""
    appliance = Appliance(settings_for(home))
    passphrase = read_passphrase(passphrase_file)
    try:
        appliance.home.lock()
        locked = True
    except HomeLocked:
        locked = False
    try:
        appliance.unseal(passphrase, actor="cli")
        yield appliance
    finally:
        appliance.seal(actor="cli")
        if locked:
            appliance.home.unlock()


def server_url(settings: EnclaveSettings, url: str | None) -> str:
    """The running server on this machine: ``--url``, else the configured host and port (a
    wildcard bind address is reached through loopback; IPv6 hosts get their brackets)."""
    if url:
        return url
    host = settings.host or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name
        address = None
    if address is not None and address.is_unspecified:
        host = "::1" if address.version == 6 else "127.0.0.1"
    return str(httpx.URL(scheme="http", host=host, port=settings.port))


def settings_for(home: Path | None, **overrides: object) -> EnclaveSettings:
    """Settings from the environment, with command-line flags taking precedence."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        values["home"] = home
    return EnclaveSettings.model_validate(values)


def read_passphrase(
    path: Path | None, prompt: str = "Admin passphrase", confirm: bool = False
) -> str:
    """The passphrase from ``path`` (first line, newline stripped) or an interactive prompt."""
    if path is not None:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"Cannot read the passphrase file {path}.") from exc
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise InvalidRequest(f"The passphrase file {path} is empty.")
        return lines[0]
    if not sys.stdin.isatty():
        raise InvalidRequest(
            "No passphrase: pass --passphrase-file FILE (no terminal to prompt on)."
        )
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


def post_to_server(url: str, path: str, body: Mapping[str, Any], bearer: str | None = None) -> Any:
    """POST JSON to a running Enclave server; its problem+json becomes ``ServerRejected``."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise StorageError(f"The running server at {url} did not answer: {exc}.") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400:
        raise ServerRejected(
            f"{answer.get('code', response.status_code)}: {answer.get('detail', '')}"
        )
    return answer
