"""Agents (versioned definitions, sharing, export/import) and conversations: the services the
agent and run APIs call. Tables in :mod:`appliance.agents.models`."""

from appliance.agents.conversations import ConversationService
from appliance.agents.service import AgentInfo, AgentService, VersionInfo

__all__ = ["AgentInfo", "AgentService", "ConversationService", "VersionInfo"]
