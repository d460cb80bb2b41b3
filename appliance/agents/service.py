"""Agents: create, edit (a new immutable version per save), history, diff, rollback, export
and import, archive and delete, sharing — and the active definition the run API executes.

Every change and its audit entry commit in one write transaction. Rollback never rewrites
history: it saves a new version whose document equals an old one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appliance.agents.access import KIND, grants_of, require, require_builder, visible_levels
from appliance.agents.models import Agent, AgentVersion
from appliance.agents.tool_network import ToolNetworkService, decode
from appliance.audit import AuditLog
from appliance.errors import AgentArchived, AgentInvalid, InvalidRequest, NotFound
from appliance.identity.acl import AclService, Level
from appliance.identity.models import Group, User
from appliance.store.database import Database
from appliance.store.schema import utcnow
from engine.agents import AgentDefinition, parse_definition
from engine.agents import diff as diff_documents
from engine.errors import AgentDefinitionInvalid

EXPORT_FORMAT = "enclave-agent"
EXPORT_FORMAT_VERSION = 1
MAX_NOTE = 500


@dataclass(frozen=True)
class AgentInfo:
    """An agent as the caller sees it: its head row, active definition and their level."""

    id: str
    name: str
    description: str
    owner_id: int
    active_version: int
    latest_version: int
    archived: bool
    created_at: datetime
    updated_at: datetime
    level: str
    definition: dict[str, Any]
    # Set by an administrator (appliance.agents.tool_network); empty: no network.
    tool_network_allowlist: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``version`` = the active version."""
        out = asdict(self)
        out["tool_network_allowlist"] = list(self.tool_network_allowlist)
        out["version"] = self.active_version
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        return out


@dataclass(frozen=True)
class VersionInfo:
    """One saved version."""

    agent_id: str
    version: int
    author_id: int | None
    created_at: datetime
    change_note: str
    definition: dict[str, Any]

    def as_dict(self, with_definition: bool = True) -> dict[str, Any]:
        """JSON-ready; lists leave the definition out."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        if not with_definition:
            del out["definition"]
        return out


def parse(document: Any) -> AgentDefinition:
    """Upgrade and validate a definition document, as an appliance error (422, naming the
    field) when it is invalid."""
    try:
        return parse_definition(document)
    except AgentDefinitionInvalid as exc:
        raise AgentInvalid(exc.message, **exc.context) from exc


def _dump(definition: AgentDefinition) -> str:
    return json.dumps(definition.document(), sort_keys=True, separators=(",", ":"))


def _note(text: str | None) -> str:
    note = (text or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidRequest(f"A change note is at most {MAX_NOTE} characters.")
    return note


class AgentService:
    """Agents and their versions, guarded by the ACL (kind ``agent``)."""

    def __init__(self, db: Database, acl: AclService, audit: AuditLog) -> None:
        self.db = db
        self.acl = acl
        self.audit = audit
        self.tool_network = ToolNetworkService(db, audit)

    # --- reading ----------------------------------------------------------------------------

    def list_agents(self, user: User, include_archived: bool = False) -> list[AgentInfo]:
        """The agents ``user`` may use, with their level, most recently changed first."""
        with self.db.read() as session:
            levels = visible_levels(session, user)
            query = select(Agent, AgentVersion.document).join(
                AgentVersion,
                (AgentVersion.agent_id == Agent.id)
                & (AgentVersion.version == Agent.active_version),
            )
            if levels is not None:
                query = query.where(Agent.id.in_(list(levels)))
            if not include_archived:
                query = query.where(Agent.archived.is_(False))
            rows = session.execute(query.order_by(Agent.updated_at.desc(), Agent.id)).all()
        return [
            _info(agent, doc, (Level.EDIT if levels is None else levels[agent.id]).value)
            for agent, doc in rows
        ]

    def get(self, user: User, agent_id: str) -> AgentInfo:
        """One agent with its active definition (needs ``use``)."""
        level = require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            agent = _agent(session, agent_id)
            doc = _version(session, agent_id, agent.active_version).document
        return _info(agent, doc, level.value)

    def shares(self, user: User, agent_id: str) -> list[dict[str, object]]:
        """Who the agent is shared with (needs ``edit``)."""
        require(self.acl, user, agent_id, Level.EDIT)
        with self.db.read() as session:
            return grants_of(session, agent_id)

    def versions(self, user: User, agent_id: str) -> list[VersionInfo]:
        """Every version, oldest first (needs ``use``)."""
        require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            rows = session.scalars(
                select(AgentVersion)
                .where(AgentVersion.agent_id == agent_id)
                .order_by(AgentVersion.version)
            ).all()
        return [_version_info(v) for v in rows]

    def version(self, user: User, agent_id: str, version: int) -> VersionInfo:
        """Version ``version`` with its definition (needs ``use``)."""
        require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            return _version_info(_version(session, agent_id, version))

    def diff(self, user: User, agent_id: str, old: int, new: int) -> dict[str, Any]:
        """Field-level differences from version ``old`` to version ``new``."""
        require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            a = _version(session, agent_id, old).document
            b = _version(session, agent_id, new).document
        # Both sides through the upgrader, so versions saved under older schemas compare fairly.
        changes = diff_documents(parse(json.loads(a)).document(), parse(json.loads(b)).document())
        return {"from": old, "to": new, "changes": changes}

    def active_definition(self, user: User, agent_id: str) -> tuple[AgentDefinition, int]:
        """What runs: the active version's definition and number (needs ``use``; an archived
        agent does not run)."""
        require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            agent = _agent(session, agent_id)
            if agent.archived:
                raise AgentArchived()
            doc = _version(session, agent_id, agent.active_version).document
        return parse(json.loads(doc)), agent.active_version

    def export(self, user: User, agent_id: str, version: int | None = None) -> dict[str, Any]:
        """A portable document of the active (or a given) version, for :meth:`import_agent`."""
        require(self.acl, user, agent_id, Level.USE)
        with self.db.read() as session:
            agent = _agent(session, agent_id)
            row = _version(session, agent_id, version or agent.active_version)
        return {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "exported_at": datetime.now(UTC).isoformat(),
            "source": {"agent_id": agent_id, "version": row.version},
            "definition": parse(json.loads(row.document)).document(),
        }

    # --- changing ---------------------------------------------------------------------------

    def create(self, user: User, document: Any, change_note: str | None = None) -> AgentInfo:
        """A new agent owned by ``user`` (admin or builder) at version 1."""
        require_builder(user)
        definition = parse(document)
        agent_id = self._insert(user, definition, _note(change_note) or "Created.", "agent.create")
        return self.get(user, agent_id)

    def import_agent(self, user: User, document: Any) -> AgentInfo:
        """A new agent owned by the importer, from an :meth:`export` document (validated)."""
        require_builder(user)
        if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
            raise AgentInvalid(
                f'An import is a JSON object with "format": "{EXPORT_FORMAT}".', field="format"
            )
        if document.get("format_version") != EXPORT_FORMAT_VERSION:
            raise AgentInvalid(
                f"This release reads export format_version {EXPORT_FORMAT_VERSION}.",
                field="format_version",
            )
        definition = parse(document.get("definition"))
        agent_id = self._insert(user, definition, "Imported.", "agent.import")
        return self.get(user, agent_id)

    def update(
        self, user: User, agent_id: str, document: Any, change_note: str | None = None
    ) -> AgentInfo:
        """Save a new version and make it active (needs ``edit``)."""
        require(self.acl, user, agent_id, Level.EDIT)
        definition = parse(document)
        note = _note(change_note)
        with self.db.write() as session:
            agent = _editable(session, agent_id)
            version = _add_version(session, agent, user, definition, note)
            self._audit(session, user, "agent.update", agent_id, version=version, note=note)
        return self.get(user, agent_id)

    def rollback(self, user: User, agent_id: str, version: int) -> AgentInfo:
        """Save a new version equal to ``version`` and make it active (history is kept)."""
        require(self.acl, user, agent_id, Level.EDIT)
        with self.db.write() as session:
            agent = _editable(session, agent_id)
            old = _version(session, agent_id, version)
            definition = parse(json.loads(old.document))
            new = _add_version(session, agent, user, definition, f"Rollback to version {version}.")
            self._audit(session, user, "agent.rollback", agent_id, version=new, source=version)
        return self.get(user, agent_id)

    def archive(self, user: User, agent_id: str, archived: bool = True) -> AgentInfo:
        """Archive (hide from lists, stop runs) or restore an agent (needs ``edit``)."""
        require(self.acl, user, agent_id, Level.EDIT)
        with self.db.write() as session:
            agent = _agent(session, agent_id)
            agent.archived = archived
            agent.updated_at = utcnow()
            action = "agent.archive" if archived else "agent.restore"
            self._audit(session, user, action, agent_id)
        return self.get(user, agent_id)

    def delete(self, user: User, agent_id: str) -> None:
        """Delete the agent, its versions and its grants (needs ``edit``). Conversations with
        it stay their users' (their agent reference becomes empty)."""
        require(self.acl, user, agent_id, Level.EDIT)
        with self.db.write() as session:
            _agent(session, agent_id)
            session.execute(delete(AgentVersion).where(AgentVersion.agent_id == agent_id))
            session.execute(delete(Agent).where(Agent.id == agent_id))
            self.acl.forget(session, KIND, agent_id)
            self._audit(session, user, "agent.delete", agent_id)

    def share(
        self,
        user: User,
        agent_id: str,
        level: str,
        *,
        user_id: int | None = None,
        group_id: int | None = None,
    ) -> list[dict[str, object]]:
        """Grant ``use`` or ``edit`` to one user or group (needs ``edit``); returns the grants."""
        require(self.acl, user, agent_id, Level.EDIT)
        with self.db.write() as session:
            _grantee_exists(session, user_id, group_id)
            self.acl.grant(KIND, agent_id, level, user_id=user_id, group_id=group_id)
            self._audit(
                session,
                user,
                "agent.share",
                agent_id,
                level=level,
                user_id=user_id,
                group_id=group_id,
            )
            return grants_of(session, agent_id)

    def unshare(
        self, user: User, agent_id: str, *, user_id: int | None = None, group_id: int | None = None
    ) -> list[dict[str, object]]:
        """Remove a grant (needs ``edit``); returns the remaining grants."""
        require(self.acl, user, agent_id, Level.EDIT)
        if (user_id is None) == (group_id is None):
            raise InvalidRequest("Unshare from exactly one user or one group.")
        with self.db.write() as session:
            self.acl.revoke(KIND, agent_id, user_id=user_id, group_id=group_id)
            self._audit(
                session, user, "agent.unshare", agent_id, user_id=user_id, group_id=group_id
            )
            return grants_of(session, agent_id)

    # --- internals --------------------------------------------------------------------------

    def _insert(self, user: User, definition: AgentDefinition, note: str, action: str) -> str:
        agent_id = uuid4().hex
        now = utcnow()
        with self.db.write() as session:
            agent = Agent(
                id=agent_id,
                owner_id=user.id,
                name=definition.name,
                active_version=0,
                latest_version=0,
                archived=False,
                created_at=now,
                updated_at=now,
            )
            session.add(agent)
            session.flush()
            _add_version(session, agent, user, definition, note)
            self.acl.register(session, KIND, agent_id, user.id)
            self._audit(session, user, action, agent_id, version=1, name=definition.name)
        return agent_id

    def _audit(
        self, session: Session, user: User, action: str, agent_id: str, **details: Any
    ) -> None:
        self.audit.append(
            session,
            action=action,
            actor=f"user:{user.id}",
            target=f"agent:{agent_id}",
            details={k: v for k, v in details.items() if v is not None} or None,
        )


def _agent(session: Session, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("There is no such agent.")
    return agent


def _editable(session: Session, agent_id: str) -> Agent:
    agent = _agent(session, agent_id)
    if agent.archived:
        raise AgentArchived()
    return agent


def _version(session: Session, agent_id: str, version: int) -> AgentVersion:
    row = session.get(AgentVersion, (agent_id, version))
    if row is None:
        raise NotFound(f"This agent has no version {version}.")
    return row


def _add_version(
    session: Session, agent: Agent, user: User, definition: AgentDefinition, note: str
) -> int:
    """Append the next version (read and written under the one writer, so numbers never
    collide) and make it active."""
    number = agent.latest_version + 1
    now = utcnow()
    session.add(
        AgentVersion(
            agent_id=agent.id,
            version=number,
            document=_dump(definition),
            author_id=user.id,
            created_at=now,
            change_note=note,
        )
    )
    agent.latest_version = agent.active_version = number
    agent.name = definition.name
    agent.updated_at = now
    session.flush()
    return number


def _grantee_exists(session: Session, user_id: int | None, group_id: int | None) -> None:
    if user_id is not None and session.get(User, user_id) is None:
        raise NotFound("There is no such user.")
    if group_id is not None and session.get(Group, group_id) is None:
        raise NotFound("There is no such group.")


def _info(agent: Agent, document: str, level: str) -> AgentInfo:
    doc = json.loads(document)
    return AgentInfo(
        id=agent.id,
        name=agent.name,
        description=str(doc.get("description", "")),
        owner_id=agent.owner_id,
        active_version=agent.active_version,
        latest_version=agent.latest_version,
        archived=agent.archived,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        level=level,
        definition=doc,
        tool_network_allowlist=decode(agent.tool_network_allowlist),
    )


def _version_info(row: AgentVersion) -> VersionInfo:
    return VersionInfo(
        agent_id=row.agent_id,
        version=row.version,
        author_id=row.author_id,
        created_at=row.created_at,
        change_note=row.change_note,
        definition=json.loads(row.document),
    )
