"""The entitlements a license can grant (its ``features``) and what each one covers.

A license lists the features of its tier. Without one, the appliance has them all (an
unlicensed appliance is unrestricted, see :mod:`appliance.licensing.service`). After a
downgrade a feature the new license lacks becomes read-only: its data is never deleted and
stays readable and exportable, but the API refuses every change with 403
``feature_not_licensed`` (``appliance.web.entitlements``).
"""

from __future__ import annotations

KNOWLEDGE = "knowledge"
MCP = "mcp"
REMOTE_PROVIDERS = "remote_providers"

FEATURES: dict[str, str] = {
    KNOWLEDGE: "knowledge bases: create, upload, re-embed, share, purge",
    MCP: "MCP tool servers: register, change, refresh, remove",
    REMOTE_PROVIDERS: "remote model endpoints: add, change, probe, remove",
}
