"""/api/v1/agents: versioned agents, their history, export/import and sharing; and
/api/v1/agent-templates.

Who: admins and builders create and change agents; members use what is shared with them;
auditors have no agent access. Per agent, the ACL decides: an agent the caller cannot use
answers 404 (its existence is not revealed); one they may use but not edit answers 403 on
changes. The run endpoint (``/api/v1/agents/{id}/runs``) lives in the run API, not here.
Only administrators set an agent's code-tool network allowlist (``PUT .../tool-network``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool as call
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from appliance.agents.templates import list_templates, template_document
from appliance.identity.models import Role
from appliance.web.auth import Admin, Principal, ServicesDep, authorize

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
templates = APIRouter(prefix="/api/v1/agent-templates", tags=["agents"])

USERS = (Role.ADMIN, Role.BUILDER, Role.MEMBER)
BUILDERS = (Role.ADMIN, Role.BUILDER)
AgentReader = Annotated[Principal, Depends(authorize(USERS, "agents:read"))]
AgentWriter = Annotated[Principal, Depends(authorize(BUILDERS, "agents:write"))]
TemplateReader = Annotated[Principal, Depends(authorize(BUILDERS, "agents:read"))]


class UpdateBody(BaseModel):
    definition: dict[str, Any]
    change_note: str = Field("", max_length=500)


class RollbackBody(BaseModel):
    version: int = Field(ge=1)


class ToolNetworkBody(BaseModel):
    # Any items: each is checked by the service, which names a bad one (tool_network_invalid).
    allowlist: list[Any]


class ShareBody(BaseModel):
    level: Literal["use", "edit"]
    user_id: int | None = None
    group_id: int | None = None


def _creation(body: dict[str, Any]) -> tuple[Any, str | None]:
    """A POST body is a definition, ``{"definition", "change_note"?}``, or
    ``{"template", "name"?}``."""
    if "template" in body:
        name = body.get("name")
        return template_document(str(body["template"]), None if name is None else str(name)), (
            f"Created from the {body['template']} template."
        )
    if isinstance(body.get("definition"), dict) and set(body) <= {"definition", "change_note"}:
        note = body.get("change_note")
        return body["definition"], None if note is None else str(note)
    return body, None


@router.post("", status_code=201)
async def create_agent(
    principal: AgentWriter, services: ServicesDep, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    """Create an agent at version 1 from a definition or a template."""
    document, note = _creation(body)
    info = await call(services.agents.create, principal.user, document, note)
    return info.as_dict()


@router.get("")
async def list_agents(
    principal: AgentReader, services: ServicesDep, archived: bool = False
) -> list[dict[str, Any]]:
    """The agents the caller may use, with their level (``use`` or ``edit``)."""
    rows = await call(services.agents.list_agents, principal.user, archived)
    return [a.as_dict() for a in rows]


@router.post("/import", status_code=201)
async def import_agent(
    principal: AgentWriter, services: ServicesDep, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    """Create a new agent, owned by the caller, from an export document."""
    info = await call(services.agents.import_agent, principal.user, body)
    return info.as_dict()


@router.get("/{agent_id}")
async def get_agent(agent_id: str, principal: AgentReader, services: ServicesDep) -> dict[str, Any]:
    """One agent with its active definition; editors also see its shares."""
    info = await call(services.agents.get, principal.user, agent_id)
    out = info.as_dict()
    if info.level == "edit" and principal.role in BUILDERS:
        out["shares"] = await call(services.agents.shares, principal.user, agent_id)
    return out


@router.put("/{agent_id}")
async def update_agent(
    agent_id: str, body: UpdateBody, principal: AgentWriter, services: ServicesDep
) -> dict[str, Any]:
    """Save a new version (with a change note) and make it active."""
    info = await call(
        services.agents.update, principal.user, agent_id, body.definition, body.change_note
    )
    return info.as_dict()


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(
    agent_id: str, principal: AgentWriter, services: ServicesDep, archive: bool = False
) -> Response:
    """Delete the agent (or, with ``?archive=true``, archive it: kept, hidden, not runnable)."""
    if archive:
        await call(services.agents.archive, principal.user, agent_id, True)
    else:
        await call(services.agents.delete, principal.user, agent_id)
    return Response(status_code=204)


@router.get("/{agent_id}/versions")
async def list_versions(
    agent_id: str, principal: AgentReader, services: ServicesDep
) -> list[dict[str, Any]]:
    """Every version, oldest first: number, author, time, change note."""
    rows = await call(services.agents.versions, principal.user, agent_id)
    return [v.as_dict(with_definition=False) for v in rows]


@router.get("/{agent_id}/versions/{n}")
async def get_version(
    agent_id: str, n: int, principal: AgentReader, services: ServicesDep
) -> dict[str, Any]:
    """One version with its definition."""
    return (await call(services.agents.version, principal.user, agent_id, n)).as_dict()


@router.get("/{agent_id}/diff")
async def diff_versions(
    agent_id: str,
    principal: AgentReader,
    services: ServicesDep,
    old: int = Query(alias="from", ge=1),
    new: int = Query(alias="to", ge=1),
) -> dict[str, Any]:
    """Field-level changes from one version to another."""
    return await call(services.agents.diff, principal.user, agent_id, old, new)


@router.post("/{agent_id}/rollback")
async def rollback(
    agent_id: str, body: RollbackBody, principal: AgentWriter, services: ServicesDep
) -> dict[str, Any]:
    """Save a new version equal to ``version`` (history is never rewritten)."""
    info = await call(services.agents.rollback, principal.user, agent_id, body.version)
    return info.as_dict()


@router.get("/{agent_id}/export")
async def export_agent(
    agent_id: str,
    principal: AgentReader,
    services: ServicesDep,
    version: int | None = Query(None, ge=1),
) -> JSONResponse:
    """A portable JSON document of the active (or a given) version."""
    doc = await call(services.agents.export, principal.user, agent_id, version)
    disposition = f'attachment; filename="agent-{agent_id}.json"'
    return JSONResponse(doc, headers={"Content-Disposition": disposition})


@router.put("/{agent_id}/tool-network")
async def set_tool_network(
    agent_id: str, body: ToolNetworkBody, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Administrators only: the ``host:port`` destinations this agent's code tools (python,
    shell) may reach over TCP (``[]``: no network, the default). Audited; 422
    ``tool_network_invalid`` names a bad entry."""
    allowlist = await call(
        services.agents.tool_network.set, principal.user, agent_id, body.allowlist
    )
    return {"agent_id": agent_id, "tool_network_allowlist": list(allowlist)}


@router.post("/{agent_id}/shares")
async def share(
    agent_id: str, body: ShareBody, principal: AgentWriter, services: ServicesDep
) -> list[dict[str, object]]:
    """Share with one user or group at ``use`` or ``edit``; returns the agent's grants."""
    return await call(
        lambda: services.agents.share(
            principal.user, agent_id, body.level, user_id=body.user_id, group_id=body.group_id
        )
    )


@router.delete("/{agent_id}/shares")
async def unshare(
    agent_id: str,
    principal: AgentWriter,
    services: ServicesDep,
    user_id: int | None = None,
    group_id: int | None = None,
) -> list[dict[str, object]]:
    """Remove the grant to ``?user_id=`` or ``?group_id=``; returns the remaining grants."""
    return await call(
        lambda: services.agents.unshare(
            principal.user, agent_id, user_id=user_id, group_id=group_id
        )
    )


@templates.get("")
async def agent_templates(_: TemplateReader) -> list[dict[str, Any]]:
    """Starter templates; create one with ``POST /api/v1/agents {"template": id, "name"}``."""
    return await call(list_templates)
