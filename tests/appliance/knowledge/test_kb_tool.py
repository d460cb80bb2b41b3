"""A real search through the engine's ``knowledge_search`` tool, with citations and ACL."""

from __future__ import annotations

import asyncio

from appliance import Appliance
from appliance.knowledge import KnowledgeRuntime
from appliance.knowledge.tool_backend import knowledge_tool
from engine.tools import ToolContext, ToolRegistry
from engine.tools.knowledge_search import KnowledgeSearchTool
from tests.appliance.knowledge.conftest import People
from tests.engine.knowledge.kb_samples import pdf_bytes


async def test_tool_returns_passages_with_citations(
    runtime: KnowledgeRuntime, people: People
) -> None:
    service = runtime.service
    kb = service.create_base(people.alice, "handbook")
    doc, _ = service.add_document(
        people.alice,
        kb.id,
        "Travel Policy.pdf",
        [
            pdf_bytes(
                ["Meals are reimbursed up to 40 euros per day.", "Book trains in second class."]
            )
        ],
    )
    runtime.worker.run_until_idle()

    tool = knowledge_tool(runtime.searcher, people.alice)
    assert isinstance(tool, KnowledgeSearchTool)
    registry = ToolRegistry([tool])
    args = registry.validate(
        "knowledge_search", {"query": "how much can I spend on food per day", "k": 2}
    )
    out = await tool.run(args, ToolContext(run_id="run-1"))

    assert not out.is_error
    assert out.content.startswith("[1] Travel Policy, page 1")
    assert "40 euros" in out.content
    first = out.citations[0]
    assert (first.document_id, first.document_name, first.page, first.knowledge_base_id) == (
        doc.id,
        "Travel Policy",
        1,
        kb.id,
    )
    assert first.end > first.start and first.score is not None
    assert len(out.citations) == 2


async def test_tool_only_reaches_bases_the_user_may_use(
    runtime: KnowledgeRuntime, people: People
) -> None:
    kb = runtime.service.create_base(people.alice, "private")
    runtime.service.add_document(
        people.alice, kb.id, "salaries.md", [b"# Salaries\n\nThe CEO earns a lot."]
    )
    runtime.worker.run_until_idle()

    bob_tool = knowledge_tool(runtime.searcher, people.bob)
    out = await bob_tool.run({"query": "CEO salary"}, ToolContext(run_id="run-2"))
    assert out.citations == () and "No passage" in out.content
    # Naming the base explicitly does not help either.
    out = await bob_tool.run(
        {"query": "CEO salary", "knowledge_base_ids": [kb.id]}, ToolContext(run_id="run-3")
    )
    assert out.citations == ()

    runtime.service.acl.grant("knowledge_base", kb.id, "use", user_id=people.bob.id)
    out = await bob_tool.run({"query": "CEO salary"}, ToolContext(run_id="run-4"))
    assert out.citations and out.citations[0].document_name == "salaries"


async def test_agent_runs_get_the_tool_bound_to_their_user(
    appliance: Appliance, people: People
) -> None:
    from appliance.knowledge import close_runtime, knowledge_runtime
    from engine.agents import AgentDefinition

    runtime = knowledge_runtime(appliance)
    try:
        kb = runtime.service.create_base(people.alice, "faq")
        _, job = runtime.service.add_document(
            people.alice, kb.id, "faq.md", [b"# Parking\n\nVisitors park on level minus two."]
        )
        definition = AgentDefinition.model_validate(
            {
                "name": "FAQ bot",
                "model": {"model": "smollm2-135m-instruct"},
                "tools": [{"name": "knowledge_search"}],
                "knowledge_bases": [kb.id],
            }
        )
        assert appliance.runs.user_tools is not None
        plain = definition.model_copy(update={"tools": ()})
        assert appliance.runs.user_tools(people.alice, plain) == []
        (tool,) = appliance.runs.user_tools(people.alice, definition)
        for _ in range(600):
            if runtime.service.get_job(people.alice, job.id).state == "done":
                break
            await asyncio.sleep(0.1)
        out = await tool.run({"query": "where do visitors park"}, ToolContext(run_id="r"))
        assert out.citations and out.citations[0].section == "Parking"
        (bobs,) = appliance.runs.user_tools(people.bob, definition)
        assert (
            await bobs.run({"query": "where do visitors park"}, ToolContext(run_id="r"))
        ).citations == ()
    finally:
        close_runtime(appliance)
