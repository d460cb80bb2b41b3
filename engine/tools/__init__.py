"""Tools agents can call: the contract (:mod:`engine.tools.base`) and the built-ins."""

from engine.tools.base import Citation, Tool, ToolContext, ToolOutput, ToolRegistry, ToolSpec

__all__ = ["Citation", "Tool", "ToolContext", "ToolOutput", "ToolRegistry", "ToolSpec"]
