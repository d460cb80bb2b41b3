"""Knowledge bases: the product side of ``engine.knowledge`` (storage, ACL, jobs, search)."""

from appliance.knowledge.runtime import KnowledgeRuntime, close_runtime, knowledge_runtime
from appliance.knowledge.search import KnowledgeSearcher, SearchFilters
from appliance.knowledge.service import KnowledgeService

__all__ = [
    "KnowledgeRuntime",
    "KnowledgeSearcher",
    "KnowledgeService",
    "SearchFilters",
    "close_runtime",
    "knowledge_runtime",
]
