"""/api/v1/providers: remote model endpoints (admins only).

The API key is write-only: it is accepted on create and update and never returned (answers
say ``has_api_key``). Creating an endpoint probes it unless ``?probe=false``; ``POST
/{id}/probe`` probes again. A probe that fails is still stored: it says what failed.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool as call
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from appliance.licensing.features import REMOTE_PROVIDERS
from appliance.providers import EndpointSpec
from appliance.web.auth import Admin, ServicesDep
from appliance.web.entitlements import entitled
from engine.providers import probe

# Without the `remote_providers` entitlement (a downgrade) endpoints stay listed, unchanged.
router = APIRouter(
    prefix="/api/v1/providers",
    tags=["providers"],
    dependencies=[Depends(entitled(REMOTE_PROVIDERS))],
)


class EndpointOptions(BaseModel):
    """Per-endpoint settings; anything left out takes the engine's default."""

    model_config = ConfigDict(extra="forbid")

    auth_header: Literal["bearer", "api-key"] | None = None
    api_version: str | None = Field(default=None, max_length=40)
    context_length: int | None = Field(default=None, ge=256, le=2_000_000)
    tools: bool | None = None
    json_mode: Literal["json_schema", "json_object"] | None = None
    connect_timeout: float | None = Field(default=None, gt=0, le=300)
    read_timeout: float | None = Field(default=None, gt=0, le=3600)
    total_timeout: float | None = Field(default=None, gt=0, le=7200)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    backoff_initial: float | None = Field(default=None, gt=0, le=60)
    backoff_max: float | None = Field(default=None, gt=0, le=600)
    max_retry_after: float | None = Field(default=None, ge=0, le=3600)
    circuit_failures: int | None = Field(default=None, ge=1, le=100)
    circuit_cooldown: float | None = Field(default=None, ge=0, le=3600)
    max_response_bytes: int | None = Field(default=None, ge=1024, le=1024**3)
    ca_bundle: str | None = Field(default=None, max_length=500)
    client_cert: str | None = Field(default=None, max_length=500)
    client_key: str | None = Field(default=None, max_length=500)
    insecure: bool | None = None

    def stored(self) -> dict[str, Any]:
        """Only the settings given."""
        return self.model_dump(exclude_none=True)


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    kind: Literal["openai_compatible", "anthropic"]
    base_url: str = Field(min_length=8, max_length=500)
    model: str = Field(min_length=1, max_length=200)
    api_key: SecretStr | None = Field(default=None, max_length=4096)
    options: EndpointOptions = Field(default_factory=lambda: EndpointOptions())
    enabled: bool = True


class EndpointPatch(BaseModel):
    """Fields to change; ``api_key`` replaces the key, ``clear_api_key`` removes it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=80)
    kind: Literal["openai_compatible", "anthropic"] | None = None
    base_url: str | None = Field(default=None, min_length=8, max_length=500)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    api_key: SecretStr | None = Field(default=None, max_length=4096)
    clear_api_key: bool = False
    options: EndpointOptions | None = None
    enabled: bool | None = None


async def _probe(services: ServicesDep, endpoint_id: str, actor: str) -> dict[str, Any]:
    kind, config = await call(services.providers.engine_config, endpoint_id)
    result = await probe(kind, config)
    info = await call(
        services.audited,
        lambda: services.providers.store_probe(endpoint_id, result),
        action="provider.probe",
        actor=actor,
        target=f"provider:{endpoint_id}",
        details={"reachable": result.reachable, "error": result.error},
    )
    return info.as_dict()


@router.get("")
async def list_endpoints(_: Admin, services: ServicesDep) -> list[dict[str, Any]]:
    """Every configured endpoint (without keys)."""
    return [e.as_dict() for e in await call(services.providers.list_endpoints)]


@router.post("", status_code=201)
async def create_endpoint(
    body: EndpointBody,
    principal: Admin,
    services: ServicesDep,
    run_probe: bool = Query(True, alias="probe"),
) -> dict[str, Any]:
    """Save an endpoint (its key encrypted), then probe it unless ``?probe=false``."""
    spec = EndpointSpec(
        name=body.name.strip(),
        kind=body.kind,
        base_url=body.base_url.strip(),
        model=body.model.strip(),
        options=body.options.stored(),
        enabled=body.enabled,
    )
    key = body.api_key.get_secret_value() if body.api_key else None
    info = await call(
        services.audited,
        lambda: services.providers.create(spec, key),
        action="provider.create",
        actor=principal.actor,
        target=lambda created: f"provider:{created.id}",
        details={"name": spec.name, "kind": spec.kind, "base_url": spec.base_url},
    )
    if run_probe:
        return await _probe(services, info.id, principal.actor)
    return info.as_dict()


@router.get("/{provider_id}")
async def get_endpoint(provider_id: str, _: Admin, services: ServicesDep) -> dict[str, Any]:
    """One endpoint (without its key)."""
    return (await call(services.providers.get, provider_id)).as_dict()


@router.patch("/{provider_id}")
async def update_endpoint(
    provider_id: str, body: EndpointPatch, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Change an endpoint; the key only when ``api_key`` or ``clear_api_key`` is sent."""
    changes = body.model_dump(exclude_none=True, exclude={"api_key", "clear_api_key", "options"})
    if body.options is not None:
        changes["options"] = body.options.stored()
    key: str | Literal[False] | None = False
    if body.clear_api_key:
        key = None
    elif body.api_key is not None:
        key = body.api_key.get_secret_value()
    info = await call(
        services.audited,
        lambda: services.providers.update(provider_id, changes, key),
        action="provider.update",
        actor=principal.actor,
        target=f"provider:{provider_id}",
        details={"fields": sorted(changes), "api_key_changed": key is not False},
    )
    return info.as_dict()


@router.delete("/{provider_id}", status_code=204)
async def delete_endpoint(provider_id: str, principal: Admin, services: ServicesDep) -> Response:
    """Remove an endpoint and its stored key."""
    await call(
        services.audited,
        lambda: services.providers.delete(provider_id),
        action="provider.delete",
        actor=principal.actor,
        target=f"provider:{provider_id}",
    )
    return Response(status_code=204)


@router.post("/{provider_id}/probe")
async def probe_endpoint(
    provider_id: str, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Probe the endpoint again (models, streaming, tools, context length) and store it."""
    return await _probe(services, provider_id, principal.actor)
