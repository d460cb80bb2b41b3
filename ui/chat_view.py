"""How chat messages look: safe Markdown bubbles, code with copy buttons, tool-call cards,
citations, feedback thumbs, and what to tell the person when a run fails."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from ui.i18n import N_, _, aria_label
from ui.markdown import highlight_code, render, sanitize, segments

Feedback = Callable[[int, int], Awaitable[bool]]
# Reads a cited passage by chunk id: its fields (document_name, page, section, text), or the
# message to show when it cannot be opened (gone, or no longer shared).
PassageLoader = Callable[[str], Awaitable[dict[str, Any] | str]]

# What to do next, by the error event's code (the message says what happened).
ADVICE = {
    "cancelled": N_(
        "You stopped the answer; nothing of this turn was saved. Send again when ready."
    ),
    "queue_full": N_(
        "The local model is busy with other people's requests. Wait a minute, then send again."
    ),
    "provider_unavailable": N_(
        "The model could not be reached. Try again; if it keeps failing, an administrator can "
        "check Admin → Models and Providers."
    ),
    "provider_circuit_open": N_(
        "The remote model failed several times and is paused. Try again in a minute or pick an "
        "agent with another model."
    ),
    "worker_crashed": N_("The local model stopped unexpectedly and is restarting. Send again."),
    "context_overflow": N_(
        "The conversation is too long for this model. Start a new conversation."
    ),
    "turn_timeout": N_(
        "Ask for less at once, or ask the agent's builder to raise its turn timeout."
    ),
    "credits_exhausted": N_(
        "Your organisation has no credits left. An administrator can import a license with more "
        "credits."
    ),
    "budget_exceeded": N_(
        "Your budget for this period is used up. Ask an administrator to raise it."
    ),
    "denied": N_("A policy stopped this request. Ask an administrator if you think it should run."),
    "agent_archived": N_("This agent was archived by its builder. Choose another agent."),
    "not_found": N_("The agent or conversation is gone. Start a new conversation."),
}


def explain(code: str, message: str) -> str:
    """The person-facing text for a failed run: what happened (the server's message, which may
    stay English) and what to do (translated)."""
    advice = (
        _(ADVICE[code])
        if code in ADVICE
        else _("Try again; if it keeps failing, tell an administrator this code.")
    )
    return _("{message} {advice} (code: {code})").format(message=message, advice=advice, code=code)


def user_bubble(text: str) -> None:
    """The person's own message (shown as text, never as HTML)."""
    with ui.row().classes("w-full justify-end"):
        ui.label(text).classes(
            "chat-user whitespace-pre-wrap bg-blue-1 text-black q-pa-sm rounded-borders max-w-2xl"
            " i18n-data"
        ).props(aria_label(_("You said")))


def message_body(text: str) -> None:
    """An assistant's text: Markdown prose and highlighted code blocks with copy buttons."""
    for index, part in enumerate(segments(text)):
        if part.code is None:
            ui.html(part.html, sanitize=sanitize).classes("chat-markdown w-full i18n-data")
            continue
        with ui.element("div").classes("chat-code relative w-full"):
            ui.html(part.html, sanitize=sanitize).classes("i18n-data")
            code = part.code
            ui.button(icon="content_copy", on_click=lambda c=code: ui.clipboard.write(c)).props(
                "flat dense " + aria_label(_("Copy code block {number}").format(number=index + 1))
            ).classes("absolute-top-right").tooltip(_("Copy code"))


class LiveAnswer:
    """An answer while it streams: text re-rendered safely on each token, tool cards, sources."""

    def __init__(self, load_passage: PassageLoader | None = None) -> None:
        self.text = ""
        self.load_passage = load_passage
        self.cards: dict[str, ToolCard] = {}
        with ui.column().classes("chat-assistant w-full gap-2") as self.box:
            self.tools = ui.column().classes("w-full gap-2")
            self.html = ui.html("", sanitize=sanitize).classes(
                "chat-markdown chat-live w-full i18n-data"
            )
            self.sources = ui.row().classes("gap-2")

    def token(self, text: str) -> None:
        """Append streamed text."""
        self.text += text
        self.html.content = render(self.text)

    def tool_call(self, data: dict[str, Any]) -> None:
        """A tool call started; the text of this step was the call (shown as the card)."""
        self.text = ""
        self.html.content = ""
        with self.tools:
            self.cards[str(data.get("id"))] = ToolCard(
                str(data.get("name")), data.get("arguments", "")
            )

    def tool_result(self, data: dict[str, Any]) -> None:
        """A tool call ended."""
        card = self.cards.get(str(data.get("id")))
        if card is not None:
            card.result(str(data.get("content", "")), bool(data.get("is_error")), data)

    def citation(self, data: dict[str, Any]) -> None:
        """A source the answer used."""
        with self.sources:
            citation_chip(data, self.load_passage)


class ToolCard:
    """One tool call: name, arguments, then its output, duration and any error."""

    def __init__(self, name: str, arguments: Any) -> None:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, indent=2)
        with (
            ui.card()
            .classes("tool-card w-full bg-grey-2 text-black")
            .props("role=group " + aria_label(_("Tool call: {tool}").format(tool=name)))
        ):
            ui.label(_("Tool call: {tool}").format(tool=name)).classes("text-bold")
            ui.label(_("Arguments")).classes("text-caption")
            ui.html(sanitize(highlight_code(args, "json")), sanitize=sanitize).classes(
                "w-full i18n-data"
            )
            self.status = ui.label(_("Running…")).classes("tool-status text-caption")
            self.output = ui.column().classes("w-full")

    def result(self, content: str, is_error: bool, data: dict[str, Any] | None = None) -> None:
        """Show what the tool returned (as text)."""
        took = (data or {}).get("duration_s")
        if isinstance(took, int | float):
            seconds = f"{float(took):.2f}"
            self.status.text = (
                _("Failed after {seconds} s") if is_error else _("Finished after {seconds} s")
            ).format(seconds=seconds)
        else:
            self.status.text = _("Failed") if is_error else _("Finished")
        if is_error:
            self.status.classes("text-negative")
        with self.output:
            ui.label(content).classes(
                "tool-output whitespace-pre-wrap font-mono text-body2 i18n-data"
            )


def _where(data: dict[str, Any]) -> str:
    where = _(", page {page}").format(page=data["page"]) if data.get("page") else ""
    if data.get("section"):
        where += f", {data['section']}"
    return where


def citation_chip(data: dict[str, Any], load: PassageLoader | None = None) -> None:
    """A cited passage: its document, page or section; on click, a dialog with the passage
    itself (read from the knowledge base by ``load``, as the viewer may see it now)."""
    name = str(data.get("document_name") or _("a document"))
    where = _where(data)

    async def open_passage() -> None:
        found: dict[str, Any] | str = dict(data)
        chunk = data.get("chunk_id")
        if load is not None and chunk:
            found = await load(str(chunk))
        with (
            ui.dialog() as dialog,
            ui.card().classes("citation-dialog max-w-2xl").props(aria_label(_("Cited passage"))),
        ):
            if isinstance(found, str):
                ui.label(f"{name}{where}").classes("text-bold i18n-data")
                ui.label(found).classes("citation-missing").props("role=alert")
            else:
                title = str(found.get("document_name") or name) + _where(found)
                ui.label(title).classes("citation-source text-bold i18n-data")
                passage = str(found.get("text") or "")
                if passage:
                    ui.label(passage).classes(
                        "citation-passage whitespace-pre-wrap i18n-data"
                    ).props("role=document")
                else:
                    ui.label(_("The passage text is in the knowledge base.")).classes(
                        "whitespace-pre-wrap"
                    )
            ui.button(_("Close"), on_click=dialog.close).props("id=citation-close")
        dialog.open()

    ui.button(
        _("Source: {document}").format(document=f"{name}{where}"), on_click=open_passage
    ).props("outline dense no-caps").classes("citation-chip")


def stored_message_views(
    messages: list[dict[str, Any]],
    on_feedback: Feedback | None,
    load_passage: PassageLoader | None = None,
) -> list[dict[str, Any]]:
    """Draw a stored conversation; returns the assistant messages that got thumbs."""
    cards: dict[str, ToolCard] = {}
    answered = []
    for message in messages:
        role = message["role"]
        if role == "user":
            user_bubble(message["content"])
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                cards[str(call.get("id"))] = ToolCard(
                    str(call.get("name")), call.get("arguments", "")
                )
            # With tool calls, the content is the call itself (local models write it as JSON):
            # the card shows it.
            if not message.get("tool_calls") and (message.get("content") or "").strip():
                assistant_bubble(message, on_feedback, load_passage)
                answered.append(message)
        elif role == "tool":
            card = cards.get(str(message.get("tool_call_id")))
            if card is not None:
                content = message.get("content") or ""
                card.result(content, content.startswith("Error:"))
    return answered


def assistant_bubble(
    message: dict[str, Any],
    on_feedback: Feedback | None,
    load_passage: PassageLoader | None = None,
) -> None:
    """A stored answer with its sources and feedback thumbs."""
    with ui.column().classes("chat-assistant w-full gap-1"):
        message_body(message.get("content") or "")
        if message.get("citations"):
            with ui.row().classes("gap-2"):
                for citation in message["citations"]:
                    citation_chip(citation, load_passage)
        if on_feedback is not None:
            thumbs_row(message, on_feedback)


def thumbs_row(message: dict[str, Any], on_feedback: Feedback) -> None:
    """Thumbs up and down; the chosen one stays highlighted."""
    current = (message.get("feedback") or {}).get("thumbs")
    with ui.row().classes("gap-1 items-center"):
        up = ui.button(icon="thumb_up").props("flat dense round " + aria_label(_("Good answer")))
        down = ui.button(icon="thumb_down").props("flat dense round " + aria_label(_("Bad answer")))

        def paint(value: int | None) -> None:
            up.props(f"color={'positive' if value == 1 else 'grey-8'}")
            down.props(f"color={'negative' if value == -1 else 'grey-8'}")

        async def give(value: int) -> None:
            if await on_feedback(int(message["id"]), value):
                paint(value)

        up.on_click(lambda: give(1))
        down.on_click(lambda: give(-1))
        paint(current)
