"""/api/v1/api-keys (own keys; admins see all) and /api/v1/audit (admins and auditors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool as call
from fastapi.responses import StreamingResponse

from appliance.errors import Forbidden
from appliance.identity.models import Role
from appliance.web.auth import AnyUser, AuditReader, ServicesDep
from appliance.web.schemas import ApiKeyBody, ApiKeyCreated, ApiKeyOut

keys = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])
audit = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@keys.get("")
async def list_keys(
    principal: AnyUser, services: ServicesDep, all_users: bool = Query(False, alias="all")
) -> list[ApiKeyOut]:
    """The caller's keys; ``?all=true`` lists everyone's (admins only)."""
    if all_users and principal.role is Role.ADMIN and principal.has_scope("admin"):
        rows = await call(services.api_keys.list_all)
    else:
        rows = await call(services.api_keys.list_for_user, principal.user.id)
    return [ApiKeyOut.of(k) for k in rows]


@keys.post("", status_code=201)
async def create_key(body: ApiKeyBody, principal: AnyUser, services: ServicesDep) -> ApiKeyCreated:
    """Create a key for the caller. The token is in this response only."""
    if principal.via == "api_key":
        # A key cannot mint keys: a leaked key must not be able to outlive its revocation.
        raise Forbidden("API keys are created with a signed-in session, not with another key.")
    row, token = await call(
        services.audited,
        lambda: services.api_keys.create(
            principal.user.id, body.name, body.scopes, body.expires_at
        ),
        action="api_key.create",
        actor=principal.actor,
        target=lambda created: f"api_key:{created[0].id}",
        details=lambda created: {"scopes": created[0].scope_list},
    )
    return ApiKeyCreated(**ApiKeyOut.of(row).model_dump(), token=token)


@keys.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: str, principal: AnyUser, services: ServicesDep) -> Response:
    """Revoke a key now (its owner or an admin; anyone else gets 404)."""
    await call(
        services.audited,
        lambda: services.api_keys.revoke(key_id, principal.user),
        action="api_key.revoke",
        actor=principal.actor,
        target=f"api_key:{key_id}",
    )
    return Response(status_code=204)


@audit.get("")
async def query_audit(
    _: AuditReader,
    services: ServicesDep,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> list[dict[str, Any]]:
    """Audit entries by time, actor and action, oldest first."""
    return await call(services.audit.query, since, until, actor, action, limit, offset)


@audit.get("/export")
async def export_audit(
    _: AuditReader,
    services: ServicesDep,
    fmt: Literal["csv", "json"] = Query("json", alias="format"),
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=100),
) -> StreamingResponse:
    """Stream the matching entries as CSV or JSON."""
    chunks = services.audit.export(fmt, since=since, until=until, actor=actor, action=action)
    media = "text/csv" if fmt == "csv" else "application/json"
    disposition = f'attachment; filename="enclave-audit.{fmt}"'
    return StreamingResponse(chunks, media_type=media, headers={"Content-Disposition": disposition})


@audit.get("/verify")
async def verify_audit(_: AuditReader, services: ServicesDep) -> dict[str, Any]:
    """Check the hash chain: ``ok`` and the entry count, or the first broken position."""
    result = await call(services.audit.verify)
    return {
        "ok": result.ok,
        "count": result.count,
        "first_bad": result.first_bad,
        "reason": result.reason,
    }
