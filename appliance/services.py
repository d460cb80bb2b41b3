"""The unsealed appliance's services, built once per unseal (and again after a rekey)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from appliance.agents import AgentService, ConversationService
from appliance.audit import AuditLog
from appliance.credits.metering import Metering, build_metering
from appliance.identity.acl import AclService
from appliance.identity.api_keys import ApiKeyService
from appliance.identity.credential_cache import CredentialCache
from appliance.identity.groups import GroupService
from appliance.identity.tokens import TokenPolicy, TokenService
from appliance.identity.users import UserService
from appliance.keys.secret import DataKey
from appliance.providers import ProviderService
from appliance.settings import EnclaveSettings
from appliance.store.database import Database

T = TypeVar("T")
AuditValue = Any | Callable[[Any], Any]


@dataclass(frozen=True)
class Services:
    """What the API and UI call; each service owns its tables."""

    users: UserService
    groups: GroupService
    api_keys: ApiKeyService
    tokens: TokenService
    audit: AuditLog
    acl: AclService
    db: Database
    agents: AgentService
    conversations: ConversationService
    providers: ProviderService
    metering: Metering
    # Verified credentials (the web layer's principals), emptied by any identity change.
    credentials: CredentialCache[Any]

    def audited(self, fn: Callable[[], T], *, action: str, **entry: AuditValue) -> T:
        """Run ``fn`` and append its audit entry in one write transaction: both happen or
        neither. Entry fields may be callables of ``fn``'s result (e.g. the new user's id)."""
        with self.db.write():
            result = fn()
            fields = {k: (v(result) if callable(v) else v) for k, v in entry.items()}
            self.audit.record(action=action, **fields)
        return result

    def close(self) -> None:
        """Stop background work (the daily license check); the database stays open."""
        self.metering.stop()
        self.db.commits.unsubscribe(self.credentials.on_commit)

    @classmethod
    def build(
        cls, db: Database, dek: DataKey, audit_key: bytes, settings: EnclaveSettings
    ) -> Services:
        """Wire the services over ``db``; the JWT signing key is derived from the data key."""
        policy = TokenPolicy(
            access_ttl=timedelta(minutes=settings.access_token_minutes),
            idle_timeout=timedelta(minutes=settings.session_idle_minutes),
            absolute_timeout=timedelta(hours=settings.session_absolute_hours),
        )
        users = UserService(db)
        groups = GroupService(db)
        metering = build_metering(db, settings, users)
        users.deletion_hooks.append(
            lambda s, user_id: metering.budgets.forget_subject(s, "user", user_id)
        )
        groups.deletion_hooks.append(
            lambda s, group_id: metering.budgets.forget_subject(s, "group", group_id)
        )
        metering.start()
        credentials: CredentialCache[Any] = CredentialCache(settings.auth_cache_seconds)
        db.commits.subscribe(credentials.on_commit)
        return cls(
            users=users,
            groups=groups,
            api_keys=ApiKeyService(db),
            tokens=TokenService(db, dek.derive("jwt-signing"), policy),
            audit=AuditLog(db, audit_key),
            acl=AclService(db),
            db=db,
            # Stateless over db: their own ACL and audit handles write to the same tables.
            agents=AgentService(db, AclService(db), AuditLog(db, audit_key)),
            conversations=ConversationService(db, AclService(db)),
            # Endpoint API keys are sealed under a subkey of the data key.
            providers=ProviderService(db, dek),
            metering=metering,
            credentials=credentials,
        )
