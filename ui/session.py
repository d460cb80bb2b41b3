"""Browser sign-in from NiceGUI pages.

The session cookie is HttpOnly, so Python handlers cannot set it over the page's websocket:
the page's own script posts the credentials to ``/api/v1/auth/session`` (same origin) and the
browser stores the cookie. Values are passed as JSON literals, never pasted into code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from ui.i18n import _

COOKIE = "enclave_session"


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in on this page, and the CSRF token of their session."""

    user_id: int
    username: str
    role: str
    csrf_token: str


def signed_in(appliance: Appliance, request: Request) -> SignedIn | None:
    """The signed-in user behind the request's cookie, or None."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    services = appliance.services
    try:
        claims = services.tokens.verify_browser_session(cookie)
        user = services.users.get_user(claims.user_id)
    except EnclaveError:
        return None
    if user.disabled:
        return None
    return SignedIn(
        user.id, user.username, user.role, services.tokens.csrf_token(claims.session_id)
    )


async def sign_in(username: str, password: str) -> str | None:
    """Sign the browser in; None on success, else the server's message for the person."""
    body = json.dumps({"username": username, "password": password})
    result = await ui.run_javascript(
        "const r = await fetch('/api/v1/auth/session', {method: 'POST', credentials: "
        f"'same-origin', headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(body)}}});"
        "const b = await r.json().catch(() => ({}));"
        "return {status: r.status, detail: b.detail || ''};",
        timeout=60,
    )
    if isinstance(result, dict) and result.get("status") == 200:
        return None
    detail = result.get("detail") if isinstance(result, dict) else None
    return str(detail or _("Sign-in failed."))


async def sign_out(csrf_token: str) -> None:
    """End the browser's session (the server clears the cookie)."""
    await ui.run_javascript(
        "await fetch('/api/v1/auth/session', {method: 'DELETE', credentials: 'same-origin', "
        f"headers: {{'X-CSRF-Token': {json.dumps(csrf_token)}}}}}); return true;",
        timeout=30,
    )


async def api_call(method: str, path: str, csrf_token: str, timeout: float = 60) -> dict[str, Any]:
    """Call the JSON API from the page as the signed-in browser (for actions the appliance
    layer offers only through its routes); returns ``{"status", "body"}``."""
    result = await ui.run_javascript(
        f"const r = await fetch({json.dumps(path)}, {{method: {json.dumps(method)}, "
        "credentials: 'same-origin', "
        f"headers: {{'X-CSRF-Token': {json.dumps(csrf_token)}}}}});"
        "const b = await r.json().catch(() => ({}));"
        "return {status: r.status, body: b};",
        timeout=timeout,
    )
    return result if isinstance(result, dict) else {"status": 0, "body": {}}
