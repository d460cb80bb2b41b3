"""A search result as the engine hands it to tools and the API: passage plus citation."""

from __future__ import annotations

from dataclasses import dataclass

from engine.tools.base import Citation


@dataclass(frozen=True)
class SearchHit:
    """One retrieved passage and exactly where it came from."""

    chunk_id: str
    knowledge_base_id: str
    document_id: str
    document_name: str
    filename: str
    text: str
    score: float
    start: int
    end: int
    page: int | None = None
    section: str | None = None

    def citation(self) -> Citation:
        """The citation a tool output carries for this passage."""
        return Citation(
            document_id=self.document_id,
            document_name=self.document_name,
            chunk_id=self.chunk_id,
            start=self.start,
            end=self.end,
            page=self.page,
            section=self.section,
            score=self.score,
            knowledge_base_id=self.knowledge_base_id,
        )
