"""ASGI middleware: request ids for logs, and the seal gate."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.errors import NotInitialised, Sealed
from appliance.lifecycle import Appliance, State
from appliance.web.problems import problem_response

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# What answers while sealed: liveness/readiness, the unseal and first-run pages and endpoints,
# and the UI framework's own static assets and websocket (the pages need them).
SEALED_ALLOWED_EXACT = frozenset(
    {"/healthz", "/readyz", "/unseal", "/setup", "/api/v1/unseal", "/api/v1/init", "/api/v1/status"}
)
SEALED_ALLOWED_PREFIXES = ("/_nicegui/", "/_nicegui_ws/")


class RequestIdMiddleware:
    """Give every request an id (or keep a sane incoming X-Request-ID) and bind it to logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def sealed_path_allowed(path: str) -> bool:
    """Whether ``path`` may be served while the appliance is sealed."""
    return path in SEALED_ALLOWED_EXACT or path.startswith(SEALED_ALLOWED_PREFIXES)


class SealGateMiddleware:
    """While sealed: APIs answer 503 ``sealed``; browsers are sent to the unseal/first-run page."""

    def __init__(self, app: ASGIApp, appliance_getter: Callable[[], Appliance]) -> None:
        self.app = app
        self.appliance_getter = appliance_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = self.appliance_getter().state
        path = scope.get("path", "")
        if state is State.UNSEALED or sealed_path_allowed(path):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        request = Request(scope)
        wants_html = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_html and not path.startswith("/api/"):
            target = "/setup" if state is State.UNINITIALISED else "/unseal"
            await RedirectResponse(target, status_code=303)(scope, receive, send)
            return
        # Always code "sealed" (clients match on it); an uninitialised home says what to do.
        error = Sealed(NotInitialised.default_message) if state is State.UNINITIALISED else Sealed()
        await problem_response(error, request)(scope, receive, send)
