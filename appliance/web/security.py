"""Security headers on every response, and the interactive API docs served from local assets."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("static")
DOCS_ASSETS = "/api/docs-assets"

# JSON APIs and the API docs: nothing inline, nothing from elsewhere, never framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# NiceGUI pages: the framework renders its page bootstrap as an inline script and Vue compiles
# templates at run time, so scripts need 'unsafe-inline'/'unsafe-eval'; everything still comes
# from this origin only (no CDN can be reached or injected), and the page is never framed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def csp_for(path: str) -> str:
    """The Content-Security-Policy for a response to ``path``."""
    if path == "/api/docs" or path.startswith(DOCS_ASSETS):
        return DOCS_CSP
    if path.startswith("/api/") or path in ("/healthz", "/readyz"):
        return API_CSP
    return PAGE_CSP


class SecurityHeadersMiddleware:
    """Add CSP, nosniff, referrer, framing and isolation headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = csp_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", policy)
                if scope.get("scheme") == "https":
                    headers.setdefault("strict-transport-security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


_DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Enclave API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_ASSETS}/swagger-init.js"></script>
</body></html>
"""


def mount_api_docs(app: FastAPI) -> None:
    """Serve ``/api/docs`` (Swagger UI) entirely from local files."""
    init_script = (STATIC / "swagger-init.js").read_text("utf-8")

    # Declared before the mount so it wins over the package's own initializer.
    @app.get(f"{DOCS_ASSETS}/swagger-init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(init_script, media_type="text/javascript")

    app.mount(
        DOCS_ASSETS,
        StaticFiles(directory=Path(fastapi_offline.__file__).with_name("static")),
        name="api-docs-assets",
    )

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(_DOCS_PAGE)
