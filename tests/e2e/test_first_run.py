"""Real server, real Chromium: first run, restart sealed, unseal, key-file auto-unseal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSPHRASE
from tests.e2e.conftest import fast_env, screenshot

pytestmark = pytest.mark.browser
ADMIN_PASSWORD = "first run secret words 42"


def test_first_run_then_unseal_after_restart(tmp_path: Path, start_server, browser) -> None:
    home = tmp_path / "home"
    server = start_server(home)
    page = browser.new_page()
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None
        ),
    )
    page.goto(f"{server.url}/")
    page.wait_for_url("**/setup")
    screenshot(page, "setup")
    page.get_by_label("Admin passphrase").fill(PASSPHRASE)
    page.get_by_label("Repeat passphrase").fill("something else entirely")
    page.click("#setup-submit")
    page.get_by_role("alert").filter(has_text="differ").wait_for()
    page.get_by_label("Repeat passphrase").fill(PASSPHRASE)
    page.click("#setup-submit")
    page.wait_for_url("**/setup/admin", timeout=30000)
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat password").fill(ADMIN_PASSWORD)
    screenshot(page, "setup-admin")
    page.click("#admin-submit")
    # The wizard goes on (license, model, agent: test_first_run_wizard.py); the start page too.
    page.wait_for_url("**/setup/license", timeout=30000)
    page.goto(f"{server.url}/")
    page.get_by_text("Signed in as admin (admin)").wait_for(timeout=30000)
    screenshot(page, "status")
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    cookie = next(c for c in page.context.cookies() if c["name"] == "enclave_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    server.stop()
    server = start_server(home)
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    page.goto(f"{server.url}/")
    page.wait_for_url("**/unseal")
    page.get_by_label("Admin passphrase").fill("this is not the passphrase")
    page.click("#unseal-submit")
    page.get_by_role("alert").filter(has_text="not correct").wait_for()
    screenshot(page, "unseal-wrong")
    page.get_by_label("Admin passphrase").fill(PASSPHRASE)
    page.click("#unseal-submit")
    # A restart does not end the browser session: the cookie still signs the user in.
    page.get_by_text("Signed in as admin").wait_for(timeout=30000)
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    page.click("#sign-out")
    page.wait_for_url("**/login", timeout=30000)
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password", exact=True).fill("wrong secret words 42")
    page.click("#login-submit")
    page.get_by_role("alert").filter(has_text="not correct").wait_for()
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.click("#login-submit")
    page.get_by_text("Signed in as admin").wait_for(timeout=30000)
    screenshot(page, "signed-in")
    page.goto(f"{server.url}/api/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="Enclave").wait_for(timeout=30000)
    screenshot(page, "api-docs")
    assert csp_violations == []
    page.close()


def enclave(*args: str | Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `enclave` command (python -m appliance) with the fast test KDF."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", *map(str, args)],
        env=fast_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_keyfile_unseals_unattended(tmp_path: Path, start_server, passphrase_file: Path) -> None:
    home, keyfile = tmp_path / "home", tmp_path / "unseal.key"
    init = enclave(
        "init", "--home", home, "--passphrase-file", passphrase_file, "--keyfile-out", keyfile
    )
    assert init.returncode == 0, init.stderr
    server = start_server(home, ENCLAVE_UNSEAL_KEYFILE=str(keyfile))
    assert httpx.get(f"{server.url}/readyz").json()["ready"] is True


def test_cli_unseals_a_running_server(tmp_path: Path, start_server, passphrase_file: Path) -> None:
    home = tmp_path / "home"
    assert enclave("init", "--home", home, "--passphrase-file", passphrase_file).returncode == 0
    server = start_server(home)
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    result = enclave(
        "unseal", "--home", home, "--passphrase-file", passphrase_file, "--url", server.url
    )
    assert result.returncode == 0, result.stderr
    assert "unsealed the server" in result.stdout
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_run_with_passphrase_file_starts_unsealed(
    tmp_path: Path, start_server, passphrase_file: Path
) -> None:
    home = tmp_path / "home"
    assert enclave("init", "--home", home, "--passphrase-file", passphrase_file).returncode == 0
    server = start_server(home, "--passphrase-file", str(passphrase_file))
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    second = enclave("run", "--home", home, "--port", "1", timeout=60)
    assert second.returncode == 1
    assert "error: home_locked:" in second.stderr


def test_users_add_goes_through_the_running_servers_api(
    tmp_path: Path, start_server, passphrase_file: Path
) -> None:
    home = tmp_path / "home"
    assert enclave("init", "--home", home, "--passphrase-file", passphrase_file).returncode == 0
    server = start_server(home, "--passphrase-file", str(passphrase_file))
    admin = {"username": "root", "password": ADMIN_PASSWORD}
    assert httpx.post(f"{server.url}/api/v1/auth/first-admin", json=admin).status_code == 201
    jwt = httpx.post(f"{server.url}/api/v1/auth/login", json=admin).json()["access_token"]
    key = httpx.post(
        f"{server.url}/api/v1/api-keys",
        json={"name": "provisioning", "scopes": ["admin"]},
        headers={"Authorization": f"Bearer {jwt}"},
    ).json()["token"]
    key_file, password_file = tmp_path / "admin.key", tmp_path / "bob.pw"
    key_file.write_text(key + "\n")
    password_file.write_text("a long one for the new member 7\n")
    add = [
        "users",
        "add",
        "--home",
        home,
        "--username",
        "bob",
        "--role",
        "member",
        "--password-file",
        password_file,
    ]
    refused = enclave(*add)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: home_locked:")
    done = enclave(*add, "--api-key-file", key_file, "--url", server.url)
    assert done.returncode == 0, done.stderr
    assert "created user bob (member" in done.stdout
    login = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "bob", "password": "a long one for the new member 7"},
    )
    assert login.status_code == 200
