"""/api/v1/license: the license in force (status for everyone, details and import for admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool as call
from pydantic import BaseModel, Field

from appliance.web.auth import Admin, AnyUser, ServicesDep

router = APIRouter(prefix="/api/v1/license", tags=["license"])


class LicenseImportBody(BaseModel):
    """A license file's content, as the vendor sent it (one line of JSON). Its size is checked
    by the license service, which names the limit (``license_too_large``)."""

    license: str = Field(min_length=1)


@router.get("/status")
async def license_status(_: AnyUser, services: ServicesDep) -> dict[str, Any]:
    """State (for the banner), days left, whether a clock rollback was seen, and seats (with
    ``over_seats`` when more users are active than the license allows). Every signed-in user
    may ask: the license itself, and the admins' message naming it, are not included."""
    licensing = services.metering.license
    status = await call(licensing.status)
    body = status.as_dict()
    lic = body.pop("license")
    body["tier"] = lic["tier"] if lic else None
    body["features"] = lic["features"] if lic else None
    seats = await call(licensing.seat_report)
    body.update({key: seats[key] for key in ("seats", "seats_used", "over_seats")})
    return body


@router.get("")
async def show_license(_: Admin, services: ServicesDep) -> dict[str, Any]:
    """The license in force in full, seats used and this appliance's machine id."""
    licensing = services.metering.license
    status = await call(licensing.status)
    body = status.as_dict()
    body["machine_id"] = licensing.machine_id
    body.update(await call(licensing.seat_report))
    return body


@router.post("")
async def import_license(
    body: LicenseImportBody, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Verify and install a license (a downgrade deletes nothing: a license with fewer seats
    than active users is installed, and ``over_seats`` tells the admin how many to disable);
    audited."""
    licensing = services.metering.license
    lic = await call(
        services.audited,
        lambda: licensing.import_license(body.license),
        action="license.import",
        actor=principal.actor,
        target=lambda imported: f"license:{imported.license_id}",
        details=lambda imported: {"tier": imported.tier, "seats": imported.seats},
    )
    status = await call(licensing.status)
    return {"imported": lic.license_id, **status.as_dict(), **(await call(licensing.seat_report))}


@router.post("/evaluation")
async def start_evaluation(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """Start the evaluation license shipped in the package (once per home, only where no
    license was ever imported); 409 ``evaluation_unavailable`` otherwise. Audited."""
    lic = await call(
        services.audited,
        services.metering.license.start_evaluation,
        action="license.evaluation",
        actor=principal.actor,
        target=lambda started: f"license:{started.license_id}",
        details=lambda started: {"days": started.evaluation_days},
    )
    status = await call(services.metering.license.status)
    return {"imported": lic.license_id, **status.as_dict()}
