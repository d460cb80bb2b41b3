"""``knowledge_search``: the agent's way into knowledge bases, with citations.

The engine knows no users or storage, so the tool searches through a
:class:`KnowledgeSearchBackend` that the appliance implements per run (bound to the user the
agent runs for, so access control applies). The model reads numbered passages; the run gets
one :class:`~engine.tools.base.Citation` per passage and streams them as ``citation`` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from engine.errors import EngineError
from engine.knowledge.hits import SearchHit
from engine.tools.base import ToolContext, ToolOutput, ToolSpec

MAX_PASSAGE_CHARS = 1200


class KnowledgeSearchBackend(Protocol):
    """Search over the knowledge bases the run may use."""

    async def search(
        self,
        query: str,
        *,
        k: int,
        mode: str,
        knowledge_base_ids: Sequence[str] | None,
    ) -> list[SearchHit]:
        """Ranked passages (an empty list when nothing matches)."""
        ...


SPEC = ToolSpec(
    name="knowledge_search",
    description=(
        "Search the knowledge bases available to this agent for passages relevant to a "
        "question. Returns numbered passages with their source document and page; cite them "
        "as [1], [2]..."
    ),
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 2000},
            "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "mode": {"type": "string", "enum": ["hybrid", "bm25", "dense"], "default": "hybrid"},
            "knowledge_base_ids": {
                "type": "array",
                "items": {"type": "string", "maxLength": 64},
                "maxItems": 50,
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)


def _where(hit: SearchHit) -> str:
    parts = [hit.document_name]
    if hit.page is not None:
        parts.append(f"page {hit.page}")
    if hit.section:
        parts.append(hit.section)
    return ", ".join(parts)


def format_hits(hits: Sequence[SearchHit]) -> str:
    """Numbered passages as the model reads them."""
    if not hits:
        return "No passage in the knowledge bases matches this query."
    blocks = []
    for number, hit in enumerate(hits, start=1):
        text = (
            hit.text if len(hit.text) <= MAX_PASSAGE_CHARS else hit.text[:MAX_PASSAGE_CHARS] + "…"
        )
        blocks.append(f"[{number}] {_where(hit)}\n{text}")
    return "\n\n".join(blocks)


class KnowledgeSearchTool:
    """The ``knowledge_search`` tool over a backend."""

    spec = SPEC

    def __init__(
        self, backend: KnowledgeSearchBackend, default_kb_ids: Sequence[str] | None = None
    ) -> None:
        self.backend = backend
        # The agent definition's bases; a call may narrow them, never widen (the backend's
        # access control has the last word either way).
        self.default_kb_ids = list(default_kb_ids) if default_kb_ids is not None else None

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutput:
        """Search and return passages plus citations; backend errors become tool errors."""
        kb_ids = arguments.get("knowledge_base_ids")
        if kb_ids is not None and self.default_kb_ids is not None:
            kb_ids = [k for k in kb_ids if k in self.default_kb_ids]
        elif kb_ids is None:
            kb_ids = self.default_kb_ids
        try:
            hits = await self.backend.search(
                arguments["query"],
                k=int(arguments.get("k", 5)),
                mode=str(arguments.get("mode", "hybrid")),
                knowledge_base_ids=kb_ids,
            )
        except EngineError as exc:
            return ToolOutput(f"Knowledge search failed: {exc.message}", is_error=True)
        return ToolOutput(
            format_hits(hits),
            data={"hits": [{"document_id": h.document_id, "chunk_id": h.chunk_id} for h in hits]},
            audit={"hits": len(hits), "mode": arguments.get("mode", "hybrid")},
            citations=tuple(h.citation() for h in hits),
        )
