"""System routes: liveness, readiness, status, first-run initialisation and unseal."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from appliance.lifecycle import Appliance
from appliance.version import __version__


class PassphraseBody(BaseModel):
    """A passphrase in a JSON body (never logged, never echoed)."""

    passphrase: str = Field(min_length=1, max_length=1024)


async def get_appliance(request: Request) -> Appliance:
    """The appliance behind this app (set by the composition root). Async, so FastAPI does not
    send this attribute read through the worker-thread pool on every request."""
    appliance: Appliance = request.app.state.appliance
    return appliance


ApplianceDep = Annotated[Appliance, Depends(get_appliance)]

router = APIRouter()


@router.get("/healthz", tags=["system"])
async def healthz(appliance: ApplianceDep) -> dict[str, Any]:
    """Liveness: the process answers. Says the lifecycle state, never anything secret."""
    return {"status": "ok", "version": __version__, "state": appliance.state.value}


@router.get("/readyz", tags=["system"])
async def readyz(appliance: ApplianceDep) -> JSONResponse:
    """Readiness: unsealed, database reachable, migrations current (else 503)."""
    report = await run_in_threadpool(appliance.readiness)
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


@router.get("/api/v1/status", tags=["system"])
async def status(appliance: ApplianceDep) -> dict[str, Any]:
    """The lifecycle state and unseal backoff, for the unseal page and scripts."""
    return {
        "state": appliance.state.value,
        "version": __version__,
        "failed_unseal_attempts": appliance.attempts.failed,
        "retry_after_s": int(appliance.attempts.retry_after()),
    }


@router.post("/api/v1/init", tags=["system"], status_code=201)
async def initialise(body: PassphraseBody, appliance: ApplianceDep) -> dict[str, Any]:
    """First run: set the admin passphrase, create the encrypted store, and unseal."""
    await run_in_threadpool(functools.partial(appliance.initialise, body.passphrase, actor="api"))
    return {"state": appliance.state.value}


@router.post("/api/v1/unseal", tags=["system"])
async def unseal(body: PassphraseBody, request: Request, appliance: ApplianceDep) -> dict[str, Any]:
    """Unseal with the admin passphrase (wrong ones are counted and backed off)."""
    ip = request.client.host if request.client else None
    await run_in_threadpool(
        functools.partial(appliance.unseal, body.passphrase, actor="api", source_ip=ip)
    )
    return {"state": appliance.state.value}
