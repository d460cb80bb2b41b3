"""The appliance's side of the engine's ``knowledge_search`` tool: search as one user.

A backend is bound to the user an agent runs for, so the tool can only ever retrieve from the
bases that user may use (deny by default, like every other path to the data).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.concurrency import run_in_threadpool

from appliance.errors import EnclaveError
from appliance.identity.models import User
from appliance.knowledge.search import KnowledgeSearcher
from engine.errors import EngineError
from engine.knowledge import SearchHit
from engine.tools.knowledge_search import KnowledgeSearchTool


class UserKnowledgeBackend:
    """:class:`engine.tools.knowledge_search.KnowledgeSearchBackend` for one user."""

    def __init__(self, searcher: KnowledgeSearcher, user: User) -> None:
        self.searcher = searcher
        self.user = user

    async def search(
        self,
        query: str,
        *,
        k: int,
        mode: str,
        knowledge_base_ids: Sequence[str] | None,
    ) -> list[SearchHit]:
        """The user's search; a base they may not use is simply not searched."""
        usable = set(await run_in_threadpool(self.searcher.service.usable_base_ids, self.user))
        chosen = usable if knowledge_base_ids is None else usable & set(knowledge_base_ids)
        if not chosen:
            return []
        try:
            result = await run_in_threadpool(
                lambda: self.searcher.search(
                    self.user, query, kb_ids=sorted(chosen), mode=mode, k=k
                )
            )
        except EnclaveError as exc:
            raise EngineError(exc.message) from exc
        return result.hits


def knowledge_tool(
    searcher: KnowledgeSearcher, user: User, kb_ids: Sequence[str] | None = None
) -> KnowledgeSearchTool:
    """The ``knowledge_search`` tool for an agent run by ``user`` over ``kb_ids``."""
    return KnowledgeSearchTool(UserKnowledgeBackend(searcher, user), kb_ids)
