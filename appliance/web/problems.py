"""RFC 9457 problem+json responses for every error, typed or not."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.errors import EnclaveError, InvalidRequest, NotFound

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"


def problem_response(error: EnclaveError, request: Request | None = None) -> JSONResponse:
    """A JSON problem response for ``error`` (with Retry-After when the error carries one)."""
    headers: dict[str, str] = {}
    retry = error.context.get("retry_after")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="enclave"'
    instance = request.url.path if request is not None else None
    return JSONResponse(
        error.to_problem(instance),
        status_code=error.http_status,
        media_type=PROBLEM,
        headers=headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Map typed errors, validation errors, HTTP errors and crashes to problem+json."""

    async def on_enclave_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EnclaveError)
        if exc.http_status >= 500:
            log.error("request.error", code=exc.code, path=request.url.path)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Each field with what is wrong with it (pydantic's message names the rule, never
        # the value sent, which may be a secret).
        errors = exc.errors()
        parts = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))} ({err.get('msg', 'invalid')})"
            for err in errors
        ]
        detail = "Invalid or missing fields: " + "; ".join(parts) if parts else None
        locs = [err.get("loc", ()) for err in errors]
        field = str(locs[0][-1]) if locs and locs[0] else None
        return problem_response(InvalidRequest(detail, field=field), request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return problem_response(NotFound(), request)
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "code": f"http_{exc.status_code}",
        }
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.crash", path=request.url.path)
        return problem_response(EnclaveError(), request)

    app.add_exception_handler(EnclaveError, on_enclave_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
