"""Agent runs in the appliance: the model hub, the run service, the built-in hooks."""

from appliance.runs.hooks import AuditHook
from appliance.runs.hub import KeyedProvider, ModelHub, Resolved
from appliance.runs.service import RunService, build_hub, build_runs

__all__ = [
    "AuditHook",
    "KeyedProvider",
    "ModelHub",
    "Resolved",
    "RunService",
    "build_hub",
    "build_runs",
]
