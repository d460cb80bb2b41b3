"""Every table model of the appliance, imported in one place.

Alembic's environment and the schema-drift test need the complete metadata; each capability
keeps its models in its own package and is listed here.
"""

from appliance.audit.models import AuditEntry
from appliance.identity.acl_models import ResourceGrant, ResourceOwner
from appliance.identity.models import ApiKey, Group, GroupMember, User
from appliance.identity.session_models import AuthSession, RefreshToken
from appliance.store.schema import Base, Blob, Installation

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AuthSession",
    "Base",
    "Blob",
    "Group",
    "GroupMember",
    "Installation",
    "RefreshToken",
    "ResourceGrant",
    "ResourceOwner",
    "User",
]
