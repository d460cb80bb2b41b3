"""Shared set-up for the licensing and credit tests: a test vendor key pair (generated here,
never the shipped one), appliances that trust it, and signed files."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from appliance import Appliance, EnclaveSettings
from appliance.identity.models import Role
from appliance.web import create_app
from tests.conftest import PASSPHRASE, make_settings

ROOT = Path(__file__).resolve().parents[3]
VENDOR_DIR = ROOT / "packaging" / "vendor"


def vendor_tool() -> Any:
    """The vendor tool's package (``packaging/vendor``; importable without installing it)."""
    if str(VENDOR_DIR) not in sys.path:
        sys.path.insert(0, str(VENDOR_DIR))
    return importlib.import_module("enclave_vendor")


def make_issuer(directory: Path) -> Any:
    """A fresh vendor key pair in ``directory`` and an issuer signing with it."""
    tool = vendor_tool()
    tool.generate_keypair(directory)
    return tool.Issuer(directory)


def licensed_settings(home: Path, issuer: Any, **overrides: object) -> EnclaveSettings:
    """Settings whose appliance trusts ``issuer``'s public key."""
    return make_settings(
        home, license_public_keys=issuer.directory / "vendor-ed25519.pem", **overrides
    )


def open_appliance(settings: EnclaveSettings) -> Appliance:
    """An initialised, unsealed appliance (the caller seals it)."""
    appliance = Appliance(settings)
    appliance.initialise(PASSPHRASE)
    return appliance


@asynccontextmanager
async def api_client(appliance: Appliance) -> AsyncIterator[httpx.AsyncClient]:
    """The appliance's API (no UI) in process, signed in as a new administrator."""
    services = appliance.services
    admin = services.users.create_user("api-admin", "api password for tests", Role.ADMIN)
    token = services.tokens.login(admin).access_token
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client
