"""/admin/credits: the license (status, import) and credits (balance, usage by day, user, agent
and model, forecast) with NiceGUI's bundled ECharts. Administrators only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from ui.access import ADMIN_ROLES, viewer
from ui.admin import admin_nav
from ui.frame import error_line, frame, heading, subheading
from ui.offload import in_thread

STATE_TEXT = {
    "unlicensed": "No license is installed: evaluation mode.",
    "valid": "The license is valid.",
    "expiring": "The license expires soon; import a renewal.",
    "grace": "The license has expired and is in its grace period; import a renewal now.",
    "read_only": "No valid license: Enclave is read-only until one is imported.",
}


def credits_report(appliance: Appliance, days: int = 30) -> dict[str, Any]:
    """Everything the page shows, read in one go (off the event loop)."""
    metering = appliance.services.metering
    licensing = metering.license
    since = datetime.now(UTC) - timedelta(days=days)
    analytics = metering.analytics
    return {
        "status": licensing.status().as_dict(),
        "machine_id": licensing.machine_id,
        "seats_used": licensing.seats_used(),
        "balance": metering.meter.balance().as_dict(),
        "forecast": analytics.forecast().as_dict(),
        "usage": {by: analytics.usage(by, since) for by in ("day", "user", "agent", "model")},
    }


def bar_chart(title: str, rows: list[dict[str, Any]], key: str) -> None:
    """Credits per ``key`` as a bar chart, with the numbers in an accessible table below."""
    ui.label(title).classes("text-subtitle1").props("role=heading aria-level=3")
    if not rows:
        ui.label("No usage in this period.")
        return
    labels = [str(r[key]) for r in rows]
    values = [float(r["credits"]) for r in rows]
    ui.echart(
        {
            "tooltip": {},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": {"type": "value", "name": "credits"},
            "series": [{"type": "bar", "data": values, "name": "credits"}],
        }
    ).classes("w-full h-56").props(f'aria-label="{title}"')
    ui.table(
        columns=[
            {"name": key, "label": key.capitalize(), "field": key, "align": "left"},
            {"name": "calls", "label": "Calls", "field": "calls"},
            {"name": "tokens", "label": "Tokens", "field": "tokens"},
            {"name": "credits", "label": "Credits", "field": "credits"},
        ],
        rows=[
            {
                key: r[key],
                "calls": r["calls"],
                "tokens": r["prompt_tokens"] + r["completion_tokens"],
                "credits": r["credits"],
            }
            for r in rows
        ],
    ).props(f"flat dense bordered id=usage-by-{key}").classes("w-full")


def add_admin_credits_page(appliance: Appliance) -> None:
    """Register /admin/credits."""

    @ui.page("/admin/credits")
    async def credits_page(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, "License and credits")
        if person is None:
            return
        report = await in_thread(credits_report, appliance)
        services = appliance.services
        with frame("License and credits", role=person.role, wide=True):
            admin_nav(person.role)
            heading("License and credits")
            subheading("License")
            status = report["status"]
            lic = status.get("license") or {}
            ui.label(STATE_TEXT.get(status["state"], status["state"])).props("id=license-state")
            if lic:
                ui.label(
                    f"{lic['customer']}, tier {lic['tier']}, {report['seats_used']} of "
                    f"{lic['seats']} seats used, expires {lic['expires_at'][:10]}"
                    + (f" ({status['days_left']} days left)" if status["days_left"] else "")
                )
            else:
                ui.label(f"{report['seats_used']} accounts in use.")
            ui.label(f"Machine id (for the vendor): {report['machine_id']}").classes("text-caption")
            text = ui.textarea("License file contents").classes("w-full").props("id=license-text")
            problem = error_line()

            async def import_license() -> None:
                problem.text = ""
                try:
                    await in_thread(
                        lambda: services.audited(
                            lambda: services.metering.license.import_license(text.value or ""),
                            action="license.import",
                            actor=f"user:{person.user.id}",
                            target=lambda imported: f"license:{imported.license_id}",
                            details=lambda imported: {
                                "tier": imported.tier,
                                "seats": imported.seats,
                            },
                        )
                    )
                except EnclaveError as exc:
                    problem.text = exc.message
                    return
                ui.notify("License imported.")
                ui.navigate.reload()

            ui.button("Import license", on_click=import_license).props("id=license-import")
            subheading("Credits")
            balance, forecast = report["balance"], report["forecast"]
            ui.label(
                f"Available: {balance['available']} credits ({balance['reserved']} reserved "
                "for answers in progress)."
            ).props("id=credit-balance")
            ui.label(
                f"At {forecast['daily_rate']} credits a day (last {forecast['days_observed']} "
                "days) the balance runs out on "
                + (forecast["runs_out_on"] or "no date: nothing is being spent")
                + "."
            ).props("id=credit-forecast")
            usage = report["usage"]
            bar_chart("Credits per day (last 30 days)", usage["day"], "day")
            with ui.row().classes("w-full no-wrap gap-4"):
                for by, title in (
                    ("user", "By user"),
                    ("agent", "By agent"),
                    ("model", "By model"),
                ):
                    with ui.column().classes("w-1/3"):
                        bar_chart(title, usage[by], by)
