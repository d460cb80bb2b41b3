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
from ui.i18n import N_, _, aria_label
from ui.offload import in_thread

STATE_TEXT = {
    "unlicensed": N_("No license is installed: evaluation mode."),
    "valid": N_("The license is valid."),
    "expiring": N_("The license expires soon; import a renewal."),
    "grace": N_("The license has expired and is in its grace period; import a renewal now."),
    "read_only": N_("No valid license: Enclave is read-only until one is imported."),
}
# The first column of each usage table.
GROUP_NAMES = {"day": N_("Day"), "user": N_("User"), "agent": N_("Agent"), "model": N_("Model")}


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


def forecast_band(forecast: dict[str, Any]) -> str:
    """The forecast's 95 % band in words (translated)."""
    earliest, latest = forecast["earliest"], forecast["latest"]
    if earliest and latest:
        return _("95 % band: between {earliest} and {latest}.").format(
            earliest=earliest, latest=latest
        )
    if earliest:
        return _("95 % band: not before {earliest}.").format(earliest=earliest)
    return _("Too little history for a band yet (it needs three whole days).")


def bar_chart(title: str, rows: list[dict[str, Any]], key: str) -> None:
    """Credits per ``key`` as a bar chart, with the numbers in an accessible table below
    (``title`` is already translated)."""
    ui.label(title).classes("text-subtitle1").props("role=heading aria-level=3")
    if not rows:
        ui.label(_("No usage in this period."))
        return
    labels = [str(r[key]) for r in rows]
    values = [float(r["credits"]) for r in rows]
    ui.echart(
        {
            "tooltip": {},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": {"type": "value", "name": _("credits")},
            "series": [{"type": "bar", "data": values, "name": _("credits")}],
        }
    ).classes("w-full h-56").props(aria_label(title))
    ui.table(
        columns=[
            {"name": key, "label": _(GROUP_NAMES[key]), "field": key, "align": "left"},
            {"name": "calls", "label": _("Calls"), "field": "calls"},
            {"name": "tokens", "label": _("Tokens"), "field": "tokens"},
            {"name": "credits", "label": _("Credits"), "field": "credits"},
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
        person = await viewer(appliance, request, ADMIN_ROLES, _("License and credits"))
        if person is None:
            return
        report = await in_thread(credits_report, appliance)
        services = appliance.services
        with frame(_("License and credits"), role=person.role, wide=True):
            admin_nav(person.role)
            heading(_("License and credits"))
            subheading(_("License"))
            status = report["status"]
            lic = status.get("license") or {}
            state = status["state"]
            ui.label(_(STATE_TEXT[state]) if state in STATE_TEXT else state).props(
                "id=license-state"
            )
            if lic:
                terms = (
                    _(
                        "{customer}, tier {tier}, {used} of {seats} seats used, expires {day} "
                        "({days} days left)"
                    )
                    if status["days_left"]
                    else _("{customer}, tier {tier}, {used} of {seats} seats used, expires {day}")
                )
                ui.label(
                    terms.format(
                        customer=lic["customer"],
                        tier=lic["tier"],
                        used=report["seats_used"],
                        seats=lic["seats"],
                        day=lic["expires_at"][:10],
                        days=status["days_left"],
                    )
                )
                if report["seats_used"] > lic["seats"]:
                    ui.label(
                        _(
                            "{used} users are active but the license has {seats} seats: "
                            "disable {over} to be within it (no user can be added or enabled "
                            "until then)."
                        ).format(
                            used=report["seats_used"],
                            seats=lic["seats"],
                            over=report["seats_used"] - lic["seats"],
                        )
                    ).classes("text-negative").props("id=license-over-seats role=alert")
            else:
                ui.label(_("{count} accounts in use.").format(count=report["seats_used"]))
            ui.label(
                _("Machine id (for the vendor): {machine_id}").format(
                    machine_id=report["machine_id"]
                )
            ).classes("text-caption")
            text = (
                ui.textarea(_("License file contents")).classes("w-full").props("id=license-text")
            )
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
                ui.notify(_("License imported."))
                ui.navigate.reload()

            ui.button(_("Import license"), on_click=import_license).props("id=license-import")
            subheading(_("Credits"))
            balance, forecast = report["balance"], report["forecast"]
            ui.label(
                _(
                    "Available: {available} credits ({reserved} reserved for answers in progress)."
                ).format(available=balance["available"], reserved=balance["reserved"])
            ).props("id=credit-balance")
            if forecast["runs_out_on"]:
                outlook = _(
                    "At {rate} credits a day (last {days} days) the balance runs out on {day}."
                ).format(
                    rate=forecast["daily_rate"],
                    days=forecast["days_observed"],
                    day=forecast["runs_out_on"],
                )
            else:
                outlook = _(
                    "At {rate} credits a day (last {days} days) the balance does not run out: "
                    "nothing is being spent."
                ).format(rate=forecast["daily_rate"], days=forecast["days_observed"])
            ui.label(outlook).props("id=credit-forecast")
            if forecast["runs_out_on"]:
                ui.label(forecast_band(forecast)).props("id=credit-forecast-band")
            usage = report["usage"]
            bar_chart(_("Credits per day (last 30 days)"), usage["day"], "day")
            with ui.row().classes("w-full no-wrap gap-4"):
                for by, title in (
                    ("user", _("By user")),
                    ("agent", _("By agent")),
                    ("model", _("By model")),
                ):
                    with ui.column().classes("w-1/3"):
                        bar_chart(title, usage[by], by)
