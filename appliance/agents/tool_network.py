"""Network for an agent's code tools: an administrator's allowlist, per agent, audited.

By default the ``python`` and ``shell`` tools run with no network at all. An administrator may
give one agent's code tools TCP access to a few ``host:port`` destinations (an internal package
mirror, say); its runs then use the sandbox's ``network=allowlist`` (a private namespace and a
relay to exactly those destinations; loopback and this machine's own addresses are always
refused). The list is kept on the agent's head row, outside its versioned definition: builders
who edit, import or roll back the agent cannot grant network, only an administrator can, and
every change is an ``agent.tool_network`` audit entry. Each code-tool run with a non-empty list
records it, with the policy hash, in its ``tool.execute`` entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from appliance.agents.models import Agent
from appliance.audit import AuditLog
from appliance.errors import Forbidden, NotFound, ToolNetworkInvalid
from appliance.identity.models import Role, User
from appliance.store.database import Database
from appliance.store.schema import utcnow
from sandbox import PolicyInvalid, SandboxPolicy
from sandbox.network import MAX_ENTRIES, parse_destination

ACTION = "agent.tool_network"


def validate(entries: Any) -> tuple[str, ...]:
    """The normalised, sorted entries (``host:port``, ``[v6]:port``), or
    :class:`ToolNetworkInvalid` naming the first bad one."""
    if not isinstance(entries, list | tuple) or isinstance(entries, str):
        raise ToolNetworkInvalid("The allowlist is a list of 'host:port' strings.")
    if len(entries) > MAX_ENTRIES:
        raise ToolNetworkInvalid(f"At most {MAX_ENTRIES} entries.")
    for entry in entries:
        if not isinstance(entry, str):
            raise ToolNetworkInvalid("Each entry is a 'host:port' string.", entry=repr(entry)[:300])
        try:
            parse_destination(entry)
        except PolicyInvalid as exc:
            raise ToolNetworkInvalid(exc.message, entry=str(entry)[:300]) from exc
    if not entries:
        return ()
    # The policy's own normalisation (sorted, deduplicated), so equal lists hash alike.
    policy = SandboxPolicy(network="allowlist", network_allowlist=tuple(entries))
    return policy.network_allowlist


def decode(stored: str | None) -> tuple[str, ...]:
    """The list kept in ``agent.tool_network_allowlist`` (NULL: none)."""
    return tuple(json.loads(stored)) if stored else ()


class ToolNetworkService:
    """Reads and sets the allowlist of an agent's code tools."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def get(self, agent_id: str) -> tuple[str, ...]:
        """What the agent's code tools may reach (empty: no network). For the run service,
        which has already checked that the caller may use the agent."""
        with self.db.read() as session:
            agent = session.get(Agent, agent_id)
            return decode(agent.tool_network_allowlist) if agent is not None else ()

    def set(self, user: User, agent_id: str, entries: Sequence[str]) -> tuple[str, ...]:
        """Replace the allowlist (administrators only; an empty list removes network)."""
        if user.role != Role.ADMIN:
            raise Forbidden("Only an administrator may give an agent's code tools network.")
        allowlist = validate(entries)
        with self.db.write() as session:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise NotFound("There is no such agent.")
            before = decode(agent.tool_network_allowlist)
            agent.tool_network_allowlist = json.dumps(list(allowlist)) if allowlist else None
            agent.updated_at = utcnow()
            self.audit.append(
                session,
                action=ACTION,
                actor=f"user:{user.id}",
                target=f"agent:{agent_id}",
                details={"allowlist": list(allowlist), "previous": list(before)},
            )
        return allowlist
