"""The tamper-evident audit log (an HMAC hash chain over the ``audit_entry`` table)."""

from appliance.audit.log import GENESIS, AuditLog, VerifyResult, ensure_audit_key
from appliance.audit.models import AuditEntry

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "VerifyResult", "ensure_audit_key"]
