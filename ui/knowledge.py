"""/knowledge (the bases a person may use; builders create them) and /knowledge/{id}: upload
with progress per file (scan → parse → keyword-searchable → embedded), document status with
reasons for failures, delete, and a search box with the passages it finds."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from nicegui import ui
from nicegui.events import UploadEventArguments

from appliance import Appliance, EnclaveError
from appliance.knowledge.runtime import knowledge_runtime
from ui.access import BUILDER_ROLES, CHAT_ROLES, Viewer, viewer
from ui.frame import error_line, frame, heading, subheading
from ui.offload import in_thread

# Document status → (how far along, what it means for the person).
STAGES = {
    "queued": (0.05, "Waiting to be processed"),
    "processing": (0.3, "Scanning and reading the file"),
    "indexed": (0.7, "Keyword-searchable; computing embeddings"),
    "ready": (1.0, "Ready: keyword and meaning search"),
    "failed": (1.0, "Failed"),
    "quarantined": (1.0, "Quarantined by the malware scanner"),
}


def add_knowledge_pages(appliance: Appliance) -> None:
    """Register /knowledge and /knowledge/{kb_id}."""

    @ui.page("/knowledge")
    async def knowledge_page(request: Request) -> None:
        person = await viewer(appliance, request, CHAT_ROLES, "Knowledge")
        if person is None:
            return
        service = (await in_thread(knowledge_runtime, appliance)).service
        bases = await in_thread(service.list_bases, person.user)
        with frame("Knowledge", role=person.role, wide=True):
            heading("Knowledge bases")
            if not bases:
                ui.label("No knowledge bases are shared with you yet.")
            with ui.column().classes("gap-1").props("id=kb-list"):
                for kb in bases:
                    with ui.row().classes("items-baseline gap-4"):
                        ui.link(kb.name, f"/knowledge/{kb.id}").classes("text-bold")
                        ui.label(kb.description or "")
            if person.role in BUILDER_ROLES:
                subheading("New knowledge base")
                with ui.row().classes("items-end gap-2"):
                    name = ui.input("Knowledge base name")
                    description = ui.input("Description (optional)").classes("w-80")
                    error = error_line()

                    async def create() -> None:
                        try:
                            kb = await in_thread(
                                service.create_base,
                                person.user,
                                name.value or "",
                                description.value or None,
                            )
                        except EnclaveError as exc:
                            error.text = exc.message
                            return
                        ui.navigate.to(f"/knowledge/{kb.id}")

                    ui.button("Create", on_click=create).props("id=kb-create")

    @ui.page("/knowledge/{kb_id}")
    async def base_page(request: Request, kb_id: str) -> None:
        person = await viewer(appliance, request, CHAT_ROLES, "Knowledge base")
        if person is None:
            return
        runtime = await in_thread(knowledge_runtime, appliance)
        try:
            kb = await in_thread(runtime.service.get_base, person.user, kb_id)
        except EnclaveError:
            with frame("Knowledge base", role=person.role):
                heading("Knowledge base not found")
                ui.label("It does not exist or is not shared with you.").props("role=alert")
                ui.link("All knowledge bases", "/knowledge")
            return
        try:
            await in_thread(runtime.service.get_base, person.user, kb_id, "edit")
            editable = True
        except EnclaveError:
            editable = False
        with frame(kb.name, role=person.role, wide=True):
            BaseView(runtime, person, kb.id, editable).draw(kb.name, kb.description or "")


class BaseView:
    """One knowledge base: upload, documents, search."""

    def __init__(self, runtime: Any, person: Viewer, kb_id: str, editable: bool) -> None:
        self.service = runtime.service
        self.searcher = runtime.searcher
        self.person = person
        self.kb_id = kb_id
        self.editable = editable
        self.shown: str = ""

    def draw(self, name: str, description: str) -> None:
        """The page body; documents refresh every second while any is being processed."""
        heading(name)
        if description:
            ui.label(description)
        self.error = error_line().props("id=kb-error")
        if self.editable:
            subheading("Upload documents")
            ui.label(
                "Drop files here or choose them: PDF, Word, Excel, PowerPoint, text, Markdown, "
                "HTML. Each is scanned, parsed, made keyword-searchable, then embedded."
            )
            ui.upload(
                label="Documents", multiple=True, auto_upload=True, on_upload=self.upload
            ).props('accept="*" id=kb-upload').classes("w-full max-w-xl")
        subheading("Documents")
        self.documents = ui.column().classes("w-full gap-2").props("id=kb-documents")
        subheading("Search")
        with ui.row().classes("items-end gap-2 w-full"):
            self.query = ui.input("Search this knowledge base").classes("grow")
            self.query.on("keydown.enter", self.search)
            ui.button("Search", icon="search", on_click=self.search).props("id=kb-search")
        self.hits = ui.column().classes("w-full gap-2").props("id=kb-hits role=region")
        self.hits.props('aria-label="Search results"')
        ui.timer(1.0, self.refresh)

    async def upload(self, event: UploadEventArguments) -> None:
        """Store an uploaded file and queue its processing."""
        data = await event.file.read()
        try:
            await in_thread(
                self.service.add_document, self.person.user, self.kb_id, event.file.name, [data]
            )
        except EnclaveError as exc:
            self.error.text = f"{event.file.name}: {exc.message}"
            return
        await self.refresh()

    async def refresh(self) -> None:
        """Redraw the documents when anything about them changed."""
        try:
            docs = await in_thread(self.service.list_documents, self.person.user, self.kb_id)
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        state = json.dumps([(d.id, d.status, d.chunk_count, d.error_message) for d in docs])
        if state == self.shown:
            return
        self.shown = state
        self.documents.clear()
        with self.documents:
            if not docs:
                ui.label("No documents yet.")
            for doc in docs:
                self._document(doc)

    def _document(self, doc: Any) -> None:
        share, meaning = STAGES.get(doc.status, (0.5, doc.status))
        with ui.row().classes("w-full items-center gap-4 kb-document"):
            ui.label(doc.filename).classes("text-bold w-64 ellipsis")
            with ui.column().classes("grow gap-0"):
                reason = f": {doc.error_message}" if doc.error_message else ""
                ui.label(f"{meaning}{reason}").classes(
                    "kb-status"
                    + (" text-negative" if doc.status in {"failed", "quarantined"} else "")
                )
                ui.linear_progress(value=share, show_value=False).props(
                    f'aria-label="Progress of {doc.filename}"'
                    + (" color=negative" if doc.status in {"failed", "quarantined"} else "")
                )
            ui.label(f"{doc.chunk_count} passages")
            if self.editable:
                ui.button(
                    icon="delete", on_click=lambda d=doc.id, n=doc.filename: self.delete(d, n)
                ).props(f'flat dense round aria-label="Delete {doc.filename}"')

    async def delete(self, doc_id: str, filename: str) -> None:
        """Delete one document and its passages."""
        try:
            await in_thread(self.service.delete_document, self.person.user, self.kb_id, doc_id)
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        ui.notify(f"Deleted {filename}.")
        await self.refresh()

    async def search(self) -> None:
        """Show the best passages for the query."""
        query = (self.query.value or "").strip()
        self.hits.clear()
        if not query:
            self.error.text = "Type what to search for."
            return
        try:
            result = await in_thread(
                lambda: self.searcher.search(self.person.user, query, kb_ids=[self.kb_id], k=5)
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        self.error.text = ""
        with self.hits:
            if not result.hits:
                ui.label(f"Nothing found for “{query}”.")
            for hit in result.hits:
                where = f", page {hit.page}" if hit.page else ""
                with ui.card().classes("w-full kb-hit"):
                    ui.label(f"{hit.document_name}{where} (score {hit.score:.2f})").classes(
                        "text-bold"
                    )
                    ui.label(hit.text).classes("whitespace-pre-wrap text-body2")
