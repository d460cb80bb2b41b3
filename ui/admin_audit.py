"""/admin/audit: the audit log with filters, export and "verify chain" (administrators and
auditors; nothing on this page changes anything)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from ui.access import OVERSIGHT_ROLES, viewer
from ui.admin import admin_nav
from ui.frame import error_line, frame, heading
from ui.i18n import N_, _
from ui.offload import in_thread

PAGE = 100
COLUMNS = [
    {"name": "id", "label": "#", "field": "id", "align": "right"},
    {"name": "created_at", "label": N_("Time (UTC)"), "field": "created_at", "align": "left"},
    {"name": "actor", "label": N_("Actor"), "field": "actor", "align": "left"},
    {"name": "action", "label": N_("Action"), "field": "action", "align": "left"},
    {"name": "target", "label": N_("Target"), "field": "target", "align": "left"},
    {"name": "outcome", "label": N_("Outcome"), "field": "outcome", "align": "left"},
    {"name": "details", "label": N_("Details"), "field": "details", "align": "left"},
]


def columns() -> list[dict[str, str]]:
    """The table's columns, headed in the page's language."""
    return [{**column, "label": _(str(column.get("label")))} for column in COLUMNS]


def parse_day(text: str | None, label: str) -> datetime | None:
    """A ``YYYY-MM-DD`` filter as the start of that day in UTC (None when empty; ``label``: the
    field's translated name)."""
    if not text or not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(_("{field} is a date like 2026-01-31.").format(field=label)) from exc


def add_admin_audit_page(appliance: Appliance) -> None:
    """Register /admin/audit."""

    @ui.page("/admin/audit")
    async def audit_page(request: Request) -> None:
        person = await viewer(appliance, request, OVERSIGHT_ROLES, _("Audit log"))
        if person is None:
            return
        audit = appliance.services.audit
        with frame(_("Audit log"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("Audit log"))
            with ui.row().classes("items-end gap-2"):
                actor = ui.input(_("Actor (e.g. user:1)")).props("clearable")
                action = ui.input(_("Action (e.g. user.create)")).props("clearable")
                since = ui.input(_("From day (YYYY-MM-DD)"))
                until = ui.input(_("To day (YYYY-MM-DD)"))
                ui.button(_("Filter"), icon="filter_list", on_click=lambda: show(0)).props(
                    "id=audit-filter"
                )
            with ui.row().classes("items-center gap-2"):
                ui.button(_("Export CSV"), icon="download", on_click=lambda: export("csv")).props(
                    "outline id=audit-export"
                )
                ui.button(_("Export JSON"), on_click=lambda: export("json")).props("outline")
                ui.button(_("Verify chain"), icon="verified", on_click=lambda: verify()).props(
                    "outline id=audit-verify"
                )
                outcome = ui.label("").props("id=verify-result role=status")
            error = error_line()
            table = ui.table(columns=columns(), rows=[], row_key="id").props(
                "flat bordered wrap-cells dense id=audit-table"
            )
            table.classes("w-full")
            with ui.row().classes("items-center gap-2"):
                previous = ui.button(_("Previous"), on_click=lambda: show(state["offset"] - PAGE))
                following = ui.button(_("Next"), on_click=lambda: show(state["offset"] + PAGE))
                position = ui.label("")
        state: dict[str, Any] = {"offset": 0}

        def filters() -> dict[str, Any]:
            end = parse_day(until.value, _("To day"))
            return {
                "actor": (actor.value or "").strip() or None,
                "action": (action.value or "").strip() or None,
                "since": parse_day(since.value, _("From day")),
                "until": end + timedelta(days=1) if end else None,
            }

        async def show(offset: int) -> None:
            error.text = ""
            try:
                chosen = filters()
                rows = await in_thread(
                    lambda: audit.query(limit=PAGE, offset=max(offset, 0), **chosen)
                )
            except (ValueError, EnclaveError) as exc:
                error.text = exc.message if isinstance(exc, EnclaveError) else str(exc)
                return
            state["offset"] = max(offset, 0)
            for row in rows:
                row["details"] = json.dumps(row["details"]) if row["details"] else ""
            table.rows = rows
            table.update()
            previous.set_enabled(state["offset"] > 0)
            following.set_enabled(len(rows) == PAGE)
            first = state["offset"] + 1
            position.text = (
                _("Entries {first}–{last}").format(first=first, last=state["offset"] + len(rows))
                if rows
                else _("No entries match.")
            )

        async def export(fmt: str) -> None:
            error.text = ""
            try:
                chosen = filters()
                body = await in_thread(lambda: "".join(audit.export(fmt, **chosen)))
            except (ValueError, EnclaveError) as exc:
                error.text = exc.message if isinstance(exc, EnclaveError) else str(exc)
                return
            media = "text/csv" if fmt == "csv" else "application/json"
            ui.download.content(body, f"enclave-audit.{fmt}", media)

        async def verify() -> None:
            outcome.text = _("Checking every entry…")
            result = await in_thread(audit.verify)
            if result.ok:
                outcome.text = _("The chain is intact: {count} entries checked.").format(
                    count=result.count
                )
                outcome.classes(replace="text-positive")
            else:
                outcome.text = _(
                    "The chain is broken at entry {entry}: {reason}. {count} entries before it "
                    "are intact. Restore from a backup and tell your security officer."
                ).format(entry=result.first_bad, reason=result.reason, count=result.count)
                outcome.classes(replace="text-negative")

        await show(0)
