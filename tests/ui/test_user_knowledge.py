"""/knowledge and /knowledge/{id} through a simulated user: who may create bases, the name
check, a document's progress to searchable, search hits, delete."""

from __future__ import annotations

from nicegui import ui

from appliance.knowledge import knowledge_runtime
from tests.ui.conftest import Pages

TEXT = (
    "Travel policy\n\nEmployees book trains for trips under four hours. The quartermaster "
    "approves every flight in advance.\n"
)


async def test_a_member_sees_shared_bases_but_cannot_create_one(pages: Pages) -> None:
    await pages.open_as("max", "/knowledge")
    await pages.user.should_see("No knowledge bases are shared with you yet.")
    await pages.user.should_not_see("New knowledge base")
    await pages.user.should_not_see(kind=ui.button, content="Create")


async def test_a_builder_creates_a_base_uploads_searches_and_deletes(pages: Pages) -> None:
    user, bea = pages.user, pages.people["bea"]
    service = knowledge_runtime(pages.appliance).service
    await pages.open_as("bea", "/knowledge")
    pages.by_id("kb-create").click()  # no name: refused, nothing created
    await pages.wait(lambda: pages.error_text() != "")
    assert service.list_bases(bea) == []

    user.find("Knowledge base name").type("Policies")
    user.find("Description (optional)").type("HR and travel")
    pages.by_id("kb-create").click()
    await pages.wait(lambda: len(service.list_bases(bea)) == 1)
    (kb,) = service.list_bases(bea)
    await pages.wait_for_path(f"/knowledge/{kb.id}")
    await user.should_see("HR and travel")
    await user.should_see("No documents yet.")

    # The upload handler's service call (the simulated browser cannot send a file).
    service.add_document(bea, kb.id, "travel.txt", [TEXT.encode()])
    # The page follows the document through the pipeline until it can be searched.
    await pages.wait(
        lambda: any(
            str(getattr(e, "text", "")).startswith(("Keyword-searchable", "Ready"))
            for e in user.current_layout.descendants()
        ),
        seconds=60,
    )
    await user.should_see("travel.txt")

    pages.by_id("kb-search").click()  # empty query
    await user.should_see("Type what to search for.")
    user.find("Search this knowledge base").type("quartermaster")
    pages.by_id("kb-search").click()
    await pages.wait(lambda: any("quartermaster" in str(getattr(e, "text", ""))
                                 for e in _in(pages, "kb-hits")), seconds=30)  # fmt: skip

    pages.labelled("Delete travel.txt").click()
    await pages.wait(lambda: service.list_documents(bea, kb.id) == [])
    await user.should_see("Deleted travel.txt.")
    await pages.wait(lambda: any(getattr(e, "text", "") == "No documents yet."
                                 for e in _in(pages, "kb-documents")))  # fmt: skip


async def test_a_base_that_is_not_shared_is_not_found(pages: Pages) -> None:
    service = knowledge_runtime(pages.appliance).service
    kb = service.create_base(pages.people["bea"], "Private notes", None)
    await pages.open_as("max", f"/knowledge/{kb.id}")
    await pages.user.should_see("Knowledge base not found")
    await pages.user.should_not_see("Private notes")


def _in(pages: Pages, dom_id: str) -> list[ui.element]:
    return list(pages.element(dom_id).descendants())
