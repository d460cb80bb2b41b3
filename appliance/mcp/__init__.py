"""MCP servers registered by administrators; their tools become agent tools."""

from appliance.mcp.models import McpServer
from appliance.mcp.service import McpServerInfo, McpService

__all__ = ["McpServer", "McpServerInfo", "McpService"]
