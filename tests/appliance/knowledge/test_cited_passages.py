"""Opening a citation: the passage is read back from the encrypted chunk table with the base's
access rule as it is now; a deleted document or a base not shared answers 404."""

from __future__ import annotations

import asyncio

import pytest

from appliance.errors import NotFound
from appliance.knowledge import KnowledgeRuntime
from appliance.knowledge.passages import cited_passage
from appliance.knowledge.tool_backend import knowledge_tool
from engine.tools import ToolContext, ToolRegistry
from tests.appliance.knowledge.conftest import People

HANDBOOK = (
    b"# Remote work\n\nEmployees may work from home on Tuesdays and Thursdays.\n\n"
    b"# Offices\n\nThe lighthouse office in Brest closes at six.\n"
)


def cite(runtime: KnowledgeRuntime, people: People, query: str) -> dict[str, object]:
    """The first citation the real knowledge_search tool gives Alice for ``query``."""
    tool = knowledge_tool(runtime.searcher, people.alice)
    args = ToolRegistry([tool]).validate("knowledge_search", {"query": query, "k": 1})
    out = asyncio.run(tool.run(args, ToolContext(run_id="run-1")))
    assert not out.is_error, out.content
    return out.citations[0].__dict__


def test_a_citation_opens_its_passage(runtime: KnowledgeRuntime, people: People) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "handbook")
    doc, _ = service.add_document(people.alice, kb.id, "policy.md", [HANDBOOK])
    runtime.worker.run_until_idle()
    citation = cite(runtime, people, "when does the Brest office close")

    passage = cited_passage(service, people.alice, str(citation["chunk_id"]))
    assert passage.document_id == doc.id and passage.knowledge_base_id == kb.id
    assert passage.document_name == citation["document_name"]
    assert "closes at six" in passage.text and "Tuesdays" not in passage.text
    assert passage.section == citation["section"] and passage.section
    assert (passage.start, passage.end) == (citation["start"], citation["end"])

    # Bob may not use the base: the passage is not his to read (not even that it exists).
    with pytest.raises(NotFound):
        cited_passage(service, people.bob, passage.chunk_id)
    service.acl.grant("knowledge_base", kb.id, "use", user_id=people.bob.id)
    assert cited_passage(service, people.bob, passage.chunk_id).text == passage.text

    # Once the document is deleted, its citations say the passage is gone.
    service.delete_document(people.alice, kb.id, doc.id)
    with pytest.raises(NotFound, match="gone"):
        cited_passage(service, people.alice, passage.chunk_id)
    with pytest.raises(NotFound):
        cited_passage(service, people.alice, "not-a-number")
