"""/chat and /chat/{id}: talk to an agent, answers streaming live; the conversation list.

Runs go through the appliance's run service on the server's event loop; each event updates the
page as it arrives. Only a finished turn is stored (by the run service), so the page re-reads
the stored conversation on ``done`` and draws it with feedback thumbs.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.knowledge.passages import cited_passage
from appliance.knowledge.runtime import knowledge_runtime
from ui.access import CHAT_ROLES, Viewer, viewer
from ui.chat_view import LiveAnswer, explain, stored_message_views, user_bubble
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import _, aria_label
from ui.markdown import code_css
from ui.offload import in_thread


def add_chat_pages(appliance: Appliance) -> None:
    """Register /chat and /chat/{conversation_id}."""

    @ui.page("/chat")
    async def new_chat_page(request: Request) -> None:
        await open_chat(appliance, request, None)

    @ui.page("/chat/{conversation_id}")
    async def chat_page(request: Request, conversation_id: str) -> None:
        await open_chat(appliance, request, conversation_id)


async def open_chat(appliance: Appliance, request: Request, conversation_id: str | None) -> None:
    """Build the chat page for the signed-in person."""
    person = await viewer(appliance, request, CHAT_ROLES, _("Chat"))
    if person is None:
        return
    page = ChatPage(appliance, person)
    await page.build(conversation_id, request.query_params.get("agent"))


# Narrow windows (and 200 % zoom on a laptop): the conversation list goes below the chat.
NARROW_CSS = """
@media (max-width: 800px) {
  .chat-layout { flex-wrap: wrap; }
  .chat-layout > .chat-sidebar { width: 100%; order: 2; }
  .chat-layout > .chat-main { width: 100%; }
}
"""


class ChatPage:
    """One browser tab's chat: the chosen agent, the open conversation, the running turn."""

    def __init__(self, appliance: Appliance, person: Viewer) -> None:
        self.appliance = appliance
        self.services = appliance.services
        self.runs = appliance.runs
        self.user = person.user
        self.person = person
        self.conversation_id: str | None = None
        self.run_id: str | None = None
        self.last_input: str | None = None

    async def build(self, conversation_id: str | None, preferred: str | None = None) -> None:
        """Load the agents and the conversation, then draw the page."""
        self.runs.hub.start()  # idle models unload on this event loop
        agents = await in_thread(self.services.agents.list_agents, self.user)
        options = {a.id: a.name for a in agents}
        conversation: dict[str, Any] | None = None
        stored: list[dict[str, Any]] = []
        if conversation_id is not None:
            try:
                conversation = await in_thread(
                    self.services.conversations.get, self.user, conversation_id
                )
                stored = await in_thread(
                    self.services.conversations.messages, self.user, conversation_id
                )
            except EnclaveError:
                conversation = None
        ui.add_css(code_css() + NARROW_CSS)
        with frame(_("Chat"), role=self.person.role, wide=True):
            if conversation is None:
                self.title = heading(_("New conversation"))
            elif conversation["title"]:
                self.title = heading(conversation["title"]).classes("i18n-data")
            else:
                self.title = heading(_("Conversation"))
            if conversation_id is not None and conversation is None:
                ui.label(
                    _("This conversation does not exist or is not yours. Start a new one.")
                ).props("role=alert")
                ui.link(_("New conversation"), "/chat")
                return
            with ui.row().classes("w-full no-wrap items-start gap-6 chat-layout"):
                with (
                    ui.column()
                    .classes("w-72 gap-2 chat-sidebar")
                    .props("role=navigation " + aria_label(_("Conversations")))
                ):
                    self._sidebar()
                with ui.column().classes("grow gap-3 chat-main").style("min-width: 0"):
                    self._main(options, conversation, preferred)
        if conversation is not None:
            self.conversation_id = conversation["id"]
            self._draw(stored)
        await self.refresh_list()

    # --- layout ------------------------------------------------------------------------------

    def _sidebar(self) -> None:
        subheading(_("Conversations"))
        ui.button(
            _("New conversation"), icon="add", on_click=lambda: ui.navigate.to("/chat")
        ).props("outline no-caps id=new-conversation")
        self.search = ui.input(_("Search conversations")).props("clearable id=conversation-search")
        self.search.on_value_change(lambda e: self.refresh_list(e.value or ""))
        self.list_error = error_line()
        self.listing = ui.column().classes("w-full gap-1").props("id=conversation-list")

    def _main(
        self, options: dict[str, str], conversation: dict[str, Any] | None, preferred: str | None
    ) -> None:
        if not options:
            ui.label(
                _(
                    "No agent is available to you yet. Builders create agents on the Agents "
                    "page; ask one to share an agent with you."
                )
            ).props("id=no-agents")
        value = None
        if conversation is not None:
            value = conversation["agent_id"] if conversation["agent_id"] in options else None
        elif options:
            value = preferred if preferred in options else next(iter(options))
        self.agent = ui.select(options, label=_("Agent"), value=value).props("id=agent-picker")
        self.agent.classes("w-80 max-w-full")
        if conversation is not None:
            self.agent.disable()
            if value is None:
                ui.label(
                    _(
                        "The agent of this conversation is gone or no longer shared with you; "
                        "you can read the conversation but not continue it."
                    )
                ).props("role=status")
        self.messages = (
            ui.column()
            .classes("w-full gap-3")
            .props("id=messages role=log aria-live=polite " + aria_label(_("Messages")))
        )
        self.status = ui.label("").classes("text-caption").props("id=run-status role=status")
        self.error = error_line().props("id=chat-error")
        self.input = ui.textarea(_("Message"), placeholder=_("Ask the agent…")).classes("w-full")
        self.input.props("autogrow id=chat-input")
        self.input.on("keydown.enter.exact.prevent", lambda: self.send())
        with ui.row().classes("gap-2"):
            self.send_button = ui.button(_("Send"), icon="send", on_click=lambda: self.send())
            self.send_button.props("id=send")
            self.stop_button = ui.button(_("Stop"), icon="stop", on_click=self.stop).props(
                "id=stop color=negative outline"
            )
            self.regenerate_button = ui.button(
                _("Regenerate"), icon="refresh", on_click=self.regenerate
            ).props("id=regenerate outline")
        ui.label(_("Enter sends; Shift+Enter starts a new line.")).classes("text-caption")
        self._running(False)

    def _running(self, running: bool) -> None:
        self.stop_button.set_visibility(running)
        self.send_button.set_enabled(not running)
        self.regenerate_button.set_visibility(not running and self.last_input is not None)

    def _draw(self, stored: list[dict[str, Any]]) -> None:
        self.messages.clear()
        with self.messages:
            stored_message_views(stored, self.feedback, self.load_passage)
        users = [m["content"] for m in stored if m["role"] == "user"]
        self.last_input = users[-1] if users else None
        self._running(False)

    # --- actions -----------------------------------------------------------------------------

    async def send(self, text: str | None = None) -> None:
        """Start a turn with ``text`` (or the input box) and stream its events onto the page."""
        if self.run_id is not None:
            return
        text = (text if text is not None else self.input.value or "").strip()
        self.error.text = ""
        if not text:
            self.error.text = _("Type a message first.")
            return
        if not self.agent.value:
            self.error.text = _("Choose an agent first.")
            return
        self.input.value = ""
        self.last_input = text
        with self.messages:
            user_bubble(text)
            answer = LiveAnswer(self.load_passage)
        self.status.text = _("Starting…")
        try:
            started = await self.runs.start(self.user, self.agent.value, text, self.conversation_id)
        except EnclaveError as exc:
            self._failed(answer, exc.code, exc.message)
            return
        except Exception as exc:
            # Engine errors (a model that cannot load) carry a stable code and a message.
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            self._failed(answer, code, str(getattr(exc, "message", exc)))
            return
        self.run_id = started.spec.run_id
        self._running(True)
        done: dict[str, Any] = {}
        try:
            async for event in started.events.follow():
                if event.kind == "done":
                    done = dict(event.data)
                else:
                    self._event(answer, event.kind, event.data)
        finally:
            self.run_id = None
            self._running(False)
        if self.error.text:
            return
        self.status.text = ""
        await self._finished(done)

    def _event(self, answer: LiveAnswer, kind: str, data: dict[str, Any]) -> None:
        if kind == "token":
            self.status.text = ""
            answer.token(str(data.get("text", "")))
        elif kind == "tool_call":
            self.status.text = _("Running the tool {tool}…").format(tool=data.get("name"))
            answer.tool_call(data)
        elif kind == "tool_result":
            self.status.text = ""
            answer.tool_result(data)
        elif kind == "citation":
            answer.citation(data)
        elif kind == "queue_position":
            self.status.text = _(
                "Waiting for the local model: you are number {position} in the queue "
                "({waiting} waiting)."
            ).format(position=data.get("position"), waiting=data.get("waiting"))
        elif kind == "fallback":
            self.status.text = _(
                "{failed} failed ({reason}); answering with {fallback} instead."
            ).format(
                failed=data.get("from_provider"),
                reason=data.get("reason"),
                fallback=data.get("to_provider"),
            )
        elif kind == "error":
            self.status.text = ""
            self.error.text = explain(str(data.get("code")), str(data.get("message", "")))

    def _failed(self, answer: LiveAnswer, code: str, message: str) -> None:
        answer.box.delete()
        self.status.text = ""
        self.error.text = explain(code, message)
        self._running(False)

    async def _finished(self, done: dict[str, Any]) -> None:
        conversation_id = done.get("conversation_id")
        if not isinstance(conversation_id, str):
            return
        if self.conversation_id is None:
            self.conversation_id = conversation_id
            self.agent.disable()
            ui.navigate.history.replace(f"/chat/{conversation_id}")
            found = await in_thread(self.services.conversations.get, self.user, conversation_id)
            if found["title"]:
                self.title.text = found["title"]
                self.title.classes("i18n-data")
            else:
                self.title.text = _("Conversation")
        stored = await in_thread(self.services.conversations.messages, self.user, conversation_id)
        self._draw(stored)
        await self.refresh_list(self.search.value or "")

    def stop(self) -> None:
        """Cancel the running turn (nothing of it is stored)."""
        if self.run_id is not None:
            try:
                self.runs.cancel(self.user, self.run_id)
            except EnclaveError as exc:
                self.error.text = exc.message
            self.status.text = _("Stopping…")

    async def regenerate(self) -> None:
        """Ask the same question again, in the same conversation."""
        if self.last_input is not None:
            await self.send(self.last_input)

    async def load_passage(self, chunk_id: str) -> dict[str, Any] | str:
        """The cited passage ``chunk_id`` as this person may read it now, or why not."""
        try:
            found = await in_thread(
                lambda: cited_passage(
                    knowledge_runtime(self.appliance).service, self.user, chunk_id
                )
            )
        except EnclaveError as exc:
            return exc.message
        return found.as_dict()

    async def feedback(self, message_id: int, thumbs: int) -> bool:
        """Record a thumbs up (1) or down (-1) on an answer."""
        try:
            await in_thread(
                self.services.conversations.feedback,
                self.user,
                message_id,
                thumbs,
                "",
                self.conversation_id,
            )
        except EnclaveError as exc:
            self.error.text = exc.message
            return False
        ui.notify(_("Thanks, your feedback was saved."))
        return True

    # --- the conversation list ---------------------------------------------------------------

    async def refresh_list(self, query: str = "") -> None:
        """Show the person's conversations (matching ``query`` when given)."""
        conversations = self.services.conversations
        self.list_error.text = ""
        try:
            if query.strip():
                items = await in_thread(conversations.search, self.user, query)
            else:
                items = await in_thread(conversations.list_conversations, self.user, None, 50)
        except EnclaveError as exc:
            self.list_error.text = exc.message
            return
        self.listing.clear()
        with self.listing:
            if not items:
                ui.label(
                    _("No conversations match.") if query.strip() else _("No conversations yet.")
                )
            for item in items:
                self._list_row(item)

    def _list_row(self, item: dict[str, Any]) -> None:
        title = item["title"] or _("Untitled conversation")
        current = item["id"] == self.conversation_id
        with ui.row().classes("w-full no-wrap items-center gap-1 conversation-row"):
            link = ui.link(title, f"/chat/{item['id']}").classes("grow ellipsis")
            if item["title"]:
                link.classes("i18n-data")
            if current:
                link.classes("text-bold").props('aria-current="page"')
            ui.button(icon="edit", on_click=lambda: self._rename(item)).props(
                "flat dense round " + aria_label(_("Rename {title}").format(title=title))
            )
            ui.button(icon="delete", on_click=lambda: self._delete(item)).props(
                "flat dense round " + aria_label(_("Delete {title}").format(title=title))
            )

    def _rename(self, item: dict[str, Any]) -> None:
        with ui.dialog() as dialog, ui.card():
            subheading(_("Rename conversation"))
            name = ui.input(_("Title"), value=item["title"] or "").props("id=rename-title")
            problem = error_line()

            async def save() -> None:
                try:
                    await in_thread(
                        self.services.conversations.rename, self.user, item["id"], name.value or ""
                    )
                except EnclaveError as exc:
                    problem.text = exc.message
                    return
                dialog.close()
                await self.refresh_list(self.search.value or "")

            with ui.row():
                ui.button(_("Save"), on_click=save).props("id=rename-save")
                ui.button(_("Cancel"), on_click=dialog.close).props("flat")
        dialog.open()

    def _delete(self, item: dict[str, Any]) -> None:
        title = item["title"] or _("Untitled conversation")
        with ui.dialog() as dialog, ui.card():
            subheading(_("Delete conversation?"))
            ui.label(
                _("“{title}” and all its messages will be deleted for good.").format(title=title)
            )
            problem = error_line()

            async def confirm() -> None:
                try:
                    await in_thread(self.services.conversations.delete, self.user, item["id"])
                except EnclaveError as exc:
                    problem.text = exc.message
                    return
                dialog.close()
                if item["id"] == self.conversation_id:
                    ui.navigate.to("/chat")
                    return
                await self.refresh_list(self.search.value or "")

            with ui.row():
                ui.button(_("Delete"), on_click=confirm).props("color=negative id=delete-confirm")
                ui.button(_("Cancel"), on_click=dialog.close).props("flat")
        dialog.open()
