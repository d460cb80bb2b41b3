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
from appliance.licensing.features import KNOWLEDGE
from ui.access import BUILDER_ROLES, CHAT_ROLES, Viewer, viewer
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import N_, _, aria_label, ngettext
from ui.offload import in_thread
from ui.uploads import name_uploader

NOT_LICENSED = N_(
    "The license in force does not include knowledge bases: they stay readable and "
    "searchable, but nothing can be added or changed. An administrator can import a license "
    "that includes them."
)
# Document status → (how far along, what it means for the person).
STAGES = {
    "queued": (0.05, N_("Waiting to be processed")),
    "processing": (0.3, N_("Scanning and reading the file")),
    "indexed": (0.7, N_("Keyword-searchable; computing embeddings")),
    "ready": (1.0, N_("Ready: keyword and meaning search")),
    "failed": (1.0, N_("Failed")),
    "quarantined": (1.0, N_("Quarantined by the malware scanner")),
}


def add_knowledge_pages(appliance: Appliance) -> None:
    """Register /knowledge and /knowledge/{kb_id}."""

    @ui.page("/knowledge")
    async def knowledge_page(request: Request) -> None:
        person = await viewer(appliance, request, CHAT_ROLES, _("Knowledge"))
        if person is None:
            return
        service = (await in_thread(knowledge_runtime, appliance)).service
        bases = await in_thread(service.list_bases, person.user)
        licensed = await in_thread(_licensed, appliance)
        with frame(_("Knowledge"), role=person.role, wide=True):
            heading(_("Knowledge bases"))
            if not bases:
                ui.label(_("No knowledge bases are shared with you yet."))
            with ui.column().classes("gap-1").props("id=kb-list"):
                for kb in bases:
                    with ui.row().classes("items-baseline gap-4"):
                        ui.link(kb.name, f"/knowledge/{kb.id}").classes("text-bold i18n-data")
                        ui.label(kb.description or "").classes("i18n-data")
            if not licensed:
                ui.label(_(NOT_LICENSED)).props("role=status id=kb-not-licensed")
            elif person.role in BUILDER_ROLES:
                subheading(_("New knowledge base"))
                with ui.row().classes("items-end gap-2"):
                    name = ui.input(_("Knowledge base name"))
                    description = ui.input(_("Description (optional)")).classes("w-80")
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

                    ui.button(_("Create"), on_click=create).props("id=kb-create")

    @ui.page("/knowledge/{kb_id}")
    async def base_page(request: Request, kb_id: str) -> None:
        person = await viewer(appliance, request, CHAT_ROLES, _("Knowledge base"))
        if person is None:
            return
        runtime = await in_thread(knowledge_runtime, appliance)
        try:
            kb = await in_thread(runtime.service.get_base, person.user, kb_id)
        except EnclaveError:
            with frame(_("Knowledge base"), role=person.role):
                heading(_("Knowledge base not found"))
                ui.label(_("It does not exist or is not shared with you.")).props("role=alert")
                ui.link(_("All knowledge bases"), "/knowledge")
            return
        try:
            await in_thread(runtime.service.get_base, person.user, kb_id, "edit")
            editable = True
        except EnclaveError:
            editable = False
        licensed = await in_thread(_licensed, appliance)
        with frame(kb.name, role=person.role, wide=True):
            if not licensed:
                ui.label(_(NOT_LICENSED)).props("role=status id=kb-not-licensed")
            BaseView(runtime, person, kb.id, editable and licensed).draw(
                kb.name, kb.description or ""
            )


def _licensed(appliance: Appliance) -> bool:
    """Whether the license includes knowledge bases (after a downgrade they are read-only)."""
    return appliance.services.metering.license.status().has_feature(KNOWLEDGE)


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
        heading(name).classes("i18n-data")
        if description:
            ui.label(description).classes("i18n-data")
        self.error = error_line().props("id=kb-error")
        if self.editable:
            subheading(_("Upload documents"))
            ui.label(
                _(
                    "Drop files here or choose them: PDF, Word, Excel, PowerPoint, text, "
                    "Markdown, HTML. Each is scanned, parsed, made keyword-searchable, then "
                    "embedded."
                )
            )
            uploader = (
                ui.upload(
                    label=_("Documents"), multiple=True, auto_upload=True, on_upload=self.upload
                )
                .props('accept="*" id=kb-upload')
                .classes("w-full max-w-xl")
            )
            name_uploader(uploader, _("Choose documents to upload"))
        subheading(_("Documents"))
        self.documents = ui.column().classes("w-full gap-2").props("id=kb-documents")
        subheading(_("Search"))
        with ui.row().classes("items-end gap-2 w-full"):
            self.query = ui.input(_("Search this knowledge base")).classes("grow")
            self.query.on("keydown.enter", self.search)
            ui.button(_("Search"), icon="search", on_click=self.search).props("id=kb-search")
        self.hits = ui.column().classes("w-full gap-2").props("id=kb-hits role=region")
        self.hits.props(aria_label(_("Search results")))
        ui.timer(1.0, self.refresh)

    async def upload(self, event: UploadEventArguments) -> None:
        """Store an uploaded file and queue its processing."""
        data = await event.file.read()
        try:
            await in_thread(
                self.service.add_document, self.person.user, self.kb_id, event.file.name, [data]
            )
        except EnclaveError as exc:
            self.error.text = _("{file}: {problem}").format(
                file=event.file.name, problem=exc.message
            )
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
                ui.label(_("No documents yet."))
            for doc in docs:
                self._document(doc)

    def _document(self, doc: Any) -> None:
        share, meaning = STAGES.get(doc.status, (0.5, doc.status))
        meaning = _(meaning) if doc.status in STAGES else meaning
        with ui.row().classes("w-full items-center gap-4 kb-document"):
            ui.label(doc.filename).classes("text-bold w-64 ellipsis i18n-data")
            with ui.column().classes("grow gap-0"):
                if doc.error_message:
                    meaning = _("{status}: {reason}").format(
                        status=meaning, reason=doc.error_message
                    )
                ui.label(meaning).classes(
                    "kb-status"
                    + (" text-negative" if doc.status in {"failed", "quarantined"} else "")
                )
                ui.linear_progress(value=share, show_value=False).props(
                    aria_label(_("Progress of {file}").format(file=doc.filename))
                    + (" color=negative" if doc.status in {"failed", "quarantined"} else "")
                )
            ui.label(
                ngettext("{count} passage", "{count} passages", doc.chunk_count).format(
                    count=doc.chunk_count
                )
            )
            if self.editable:
                ui.button(
                    icon="delete", on_click=lambda d=doc.id, n=doc.filename: self.delete(d, n)
                ).props(
                    "flat dense round " + aria_label(_("Delete {file}").format(file=doc.filename))
                )

    async def delete(self, doc_id: str, filename: str) -> None:
        """Delete one document and its passages."""
        try:
            await in_thread(self.service.delete_document, self.person.user, self.kb_id, doc_id)
        except EnclaveError as exc:
            self.error.text = exc.message
            return
        ui.notify(_("Deleted {file}.").format(file=filename))
        await self.refresh()

    async def search(self) -> None:
        """Show the best passages for the query."""
        query = (self.query.value or "").strip()
        self.hits.clear()
        if not query:
            self.error.text = _("Type what to search for.")
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
                ui.label(_("Nothing found for “{query}”.").format(query=query))
            for hit in result.hits:
                where = _(", page {page}").format(page=hit.page) if hit.page else ""
                with ui.card().classes("w-full kb-hit"):
                    ui.label(
                        _("{document} (score {score})").format(
                            document=f"{hit.document_name}{where}", score=f"{hit.score:.2f}"
                        )
                    ).classes("text-bold")
                    ui.label(hit.text).classes("whitespace-pre-wrap text-body2 i18n-data")
