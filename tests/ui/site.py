"""A seeded Enclave home served by a real `enclave run`, for the browser tests of the pages.

The home is prepared in-process (real SQLCipher, real services): people of every role, agents,
and any seed a test needs; then it is sealed and a real server unseals it from a passphrase
file, so the browser talks to exactly what a user would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import Appliance, Role
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from models import load_catalog
from tests.conftest import PASSPHRASE, make_settings
from tests.e2e.conftest import Server, fast_env

PASSWORD = "pages test password 2468"
PEOPLE = {
    "ada": Role.ADMIN,
    "bea": Role.BUILDER,
    "max": Role.MEMBER,
    "aud": Role.AUDITOR,
}
MODEL = {"provider": "local", "model": load_catalog().default}
# Every admin page, and every page of the UI (for checks that walk them all).
ADMIN_PAGES = (
    "/admin",
    "/admin/users",
    "/admin/keys",
    "/admin/audit",
    "/admin/models",
    "/admin/credits",
    "/admin/health",
)
PAGES = (
    "/",
    "/chat",
    "/agents",
    "/agents/new",
    "/knowledge",
    "/account",
    *ADMIN_PAGES,
    "/setup/license",
    "/setup/model",
    "/setup/agent",
)


def definition(name: str, max_tokens: int = 12, **extra: Any) -> dict[str, Any]:
    """A small agent on the bundled local model (short answers keep the tests quick)."""
    return {
        "name": name,
        "instructions": "You are a helpful assistant. Answer briefly.",
        "model": MODEL,
        "generation": {"temperature": 0.0, "max_output_tokens": max_tokens},
        **extra,
    }


@dataclass
class Site:
    """The running server, who is in it and what was seeded."""

    server: Server
    users: dict[str, User]
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url


Seeder = Callable[[Appliance, dict[str, User]], dict[str, Any]]


def start_site(root: Path, seed: Seeder | None = None) -> Site:
    """Create a home under ``root``, seed it, and serve it with a real `enclave run`."""
    home = root / "home"
    appliance = Appliance(make_settings(home))
    appliance.initialise(PASSPHRASE)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    people = {name: users.create_user(name, PASSWORD, role) for name, role in PEOPLE.items()}
    seeded = seed(appliance, people) if seed is not None else {}
    appliance.seal()
    passphrase = root / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    passphrase.chmod(0o600)
    env = fast_env(ENCLAVE_MODEL_THREADS="2", ENCLAVE_RATE_LIMIT_AUTH_PER_MINUTE="1000")
    server = Server(home, env, ["--passphrase-file", str(passphrase)])
    return Site(server, people, seeded)


def sign_in(page: Any, site: Site, name: str) -> None:
    """Sign ``name`` in through the real sign-in page."""
    page.context.clear_cookies()
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.click("#login-submit")
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60000)
