"""Every table model of the appliance, imported in one place.

Alembic's environment and the schema-drift test need the complete metadata; each capability
keeps its models in its own package and is listed here.
"""

from appliance.agents.models import Agent, AgentVersion, Conversation, Feedback, Message
from appliance.audit.models import AuditEntry
from appliance.credits.models import (
    CreditBudget,
    CreditLedgerEntry,
    CreditPrice,
    CreditReservation,
    Notification,
)
from appliance.identity.acl_models import ResourceGrant, ResourceOwner
from appliance.identity.models import ApiKey, Group, GroupMember, IdHighWater, User
from appliance.identity.session_models import AuthSession, RefreshToken
from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeJob,
    KnowledgeSearch,
)
from appliance.licensing.models import LicenseClock, LicenseRecord
from appliance.mcp.models import McpServer
from appliance.providers.models import ProviderEndpoint
from appliance.store.schema import Base, Blob, Installation

__all__ = [
    "Agent",
    "AgentVersion",
    "ApiKey",
    "AuditEntry",
    "AuthSession",
    "Base",
    "Blob",
    "Conversation",
    "CreditBudget",
    "CreditLedgerEntry",
    "CreditPrice",
    "CreditReservation",
    "Feedback",
    "Group",
    "GroupMember",
    "IdHighWater",
    "Installation",
    "KnowledgeBase",
    "KnowledgeChunk",
    "KnowledgeDocument",
    "KnowledgeJob",
    "KnowledgeSearch",
    "LicenseClock",
    "LicenseRecord",
    "McpServer",
    "Message",
    "Notification",
    "ProviderEndpoint",
    "RefreshToken",
    "ResourceGrant",
    "ResourceOwner",
    "User",
]
