"""The passage a citation points at, read back for the person who clicks it.

Citations (``citation`` run events, stored with the answer) carry where a passage came from
— knowledge base, document, chunk id, page or section, character range — but not its text: the
text stays in the encrypted chunk table and is read when someone opens the citation, with the
knowledge base's access rule checked at that moment (a base no longer shared answers 404, and a
deleted document says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from appliance.errors import NotFound
from appliance.identity.models import User
from appliance.knowledge.models import KnowledgeChunk, KnowledgeDocument
from appliance.knowledge.service import KnowledgeService


@dataclass(frozen=True)
class Passage:
    """One cited passage: its document, where in it, and the text."""

    knowledge_base_id: str
    document_id: str
    document_name: str
    chunk_id: str
    text: str
    page: int | None
    section: str | None
    start: int
    end: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cited_passage(service: KnowledgeService, user: User, chunk_id: str) -> Passage:
    """The passage ``chunk_id`` of a base ``user`` may use; :class:`NotFound` otherwise (also
    when its document was deleted since the answer cited it)."""
    try:
        number = int(chunk_id)
    except (TypeError, ValueError) as exc:
        raise NotFound("This citation does not point at a passage.") from exc
    with service.db.read() as session:
        chunk = session.get(KnowledgeChunk, number)
        document = None if chunk is None else session.get(KnowledgeDocument, chunk.document_id)
    if chunk is None or document is None:
        raise NotFound(
            "The cited passage is gone: its document was deleted or re-indexed since the answer."
        )
    service.get_base(user, chunk.kb_id)  # the base's access rule, as it is now
    return Passage(
        knowledge_base_id=chunk.kb_id,
        document_id=document.id,
        document_name=document.name,
        chunk_id=str(chunk.id),
        text=chunk.text,
        page=chunk.page,
        section=chunk.section,
        start=chunk.char_start,
        end=chunk.char_end,
    )
