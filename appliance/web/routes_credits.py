"""/api/v1/credits (balance, ledger, analytics, prices, budgets, vouchers) and
/api/v1/notifications.

Everyone signed in sees the organisation's balance and their own spending and budgets; the
ledger and analytics are for admins and auditors; prices, budgets and vouchers are changed by
admins (audited).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool as call
from pydantic import BaseModel, Field

from appliance.credits.budgets import period_start, spent
from appliance.identity.models import Role
from appliance.licensing.document import micro_to_credits
from appliance.web.auth import Admin, AnyUser, AuditReader, Principal, ServicesDep

credits = APIRouter(prefix="/api/v1/credits", tags=["credits"])
notifications = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

Credits = float | str
# Row ids are SQLite integers: a larger number is a 422, not an overflow deep in the driver.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class PriceBody(BaseModel):
    name: str = Field(min_length=3, max_length=200)
    input_per_1k: Credits = 0.0
    output_per_1k: Credits = 0.0
    per_second: Credits = 0.0


class BudgetBody(BaseModel):
    scope: Literal["user", "group"]
    subject_id: int = Field(ge=1, le=MAX_ROW_ID)
    period: Literal["day", "month"]
    mode: Literal["soft", "hard"]
    limit: Credits


class BudgetChange(BaseModel):
    limit: Credits


class VoucherBody(BaseModel):
    """A voucher file's content, as the vendor sent it. Its size is checked by the license
    service, which names the limit (413 ``license_too_large``)."""

    voucher: str = Field(min_length=1)


def _own_spending(services: Any, user_id: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    with services.db.read() as session:
        day = spent(session, [user_id], period_start("day", now))
        month = spent(session, [user_id], period_start("month", now))
    budgets = [
        b.as_dict()
        for b in services.metering.budgets.all()
        if b.scope == "user" and b.subject_id == user_id
    ]
    return {
        "spent_today": micro_to_credits(day),
        "spent_this_month": micro_to_credits(month),
        "budgets": budgets,
    }


@credits.get("/balance")
async def balance(principal: AnyUser, services: ServicesDep) -> dict[str, Any]:
    """The organisation's credits (balance, reserved, available), the license state, and the
    caller's own spending today and this month with their budgets."""
    body = (await call(services.metering.meter.balance)).as_dict()
    body["license_state"] = (await call(services.metering.license.status)).state.value
    body["you"] = await call(_own_spending, services, principal.user.id)
    return body


@credits.get("/ledger")
async def ledger(
    _: AuditReader,
    services: ServicesDep,
    after: int = Query(0, ge=0, le=MAX_ROW_ID),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Ledger entries after position ``after``, oldest first."""
    return await call(services.metering.meter.entries, after, limit)


@credits.get("/verify")
async def verify(_: AuditReader, services: ServicesDep) -> dict[str, Any]:
    """Check the ledger's hash chain and balances: ``ok`` or the first bad entry."""
    result = await call(services.metering.meter.verify)
    return {
        "ok": result.ok,
        "count": result.count,
        "first_bad": result.first_bad,
        "reason": result.reason,
    }


@credits.get("/usage")
async def usage(
    _: AuditReader,
    services: ServicesDep,
    by: Literal["user", "group", "agent", "model", "day"] = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Charges grouped by user, group, agent, model or day (DuckDB over the ledger)."""
    return await call(services.metering.analytics.usage, by, since, until)


@credits.get("/forecast")
async def forecast(
    _: AuditReader, services: ServicesDep, days: int = Query(14, ge=1, le=366)
) -> dict[str, Any]:
    """When the free balance runs out at the recent daily rate, with a confidence band."""
    return (await call(services.metering.analytics.forecast, days)).as_dict()


@credits.get("/recommendations")
async def recommendations(
    _: AuditReader, services: ServicesDep, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Ways to spend fewer credits (from the charges since ``since``; all history without)."""
    return await call(services.metering.analytics.recommendations, since)


@credits.get("/statement")
async def statement(
    _: AuditReader,
    services: ServicesDep,
    month: str = Query(..., max_length=7),
    group_id: int | None = Query(None, ge=1, le=MAX_ROW_ID),
) -> Response:
    """The month's usage per group, user and model as CSV (internal chargeback)."""
    text = await call(services.metering.analytics.statement, month, group_id)
    disposition = f'attachment; filename="enclave-statement-{month}.csv"'
    return Response(text, media_type="text/csv", headers={"Content-Disposition": disposition})


@credits.get("/prices")
async def list_prices(_: AnyUser, services: ServicesDep) -> list[dict[str, Any]]:
    """The price table (stored prices and the built-in defaults)."""
    return await call(services.metering.prices.list)


@credits.put("/prices")
async def set_price(body: PriceBody, principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """Create or change one price; audited."""
    price = await call(
        services.audited,
        lambda: services.metering.prices.set(
            body.name, body.input_per_1k, body.output_per_1k, body.per_second
        ),
        action="credits.price_set",
        actor=principal.actor,
        target=f"price:{body.name}",
        details=body.model_dump(mode="json"),
    )
    return price.as_dict()


@credits.get("/budgets")
async def list_budgets(_: Admin, services: ServicesDep) -> list[dict[str, Any]]:
    """Every budget."""
    return [b.as_dict() for b in await call(services.metering.budgets.all)]


@credits.post("/budgets", status_code=201)
async def create_budget(
    body: BudgetBody, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """A new budget; audited."""
    budget = await call(
        services.audited,
        lambda: services.metering.budgets.create(
            body.scope, body.subject_id, body.period, body.mode, body.limit
        ),
        action="credits.budget_create",
        actor=principal.actor,
        target=lambda created: f"budget:{created.id}",
        details=body.model_dump(mode="json"),
    )
    return budget.as_dict()


@credits.patch("/budgets/{budget_id}")
async def change_budget(
    budget_id: RowId, body: BudgetChange, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Change a budget's limit; audited."""
    budget = await call(
        services.audited,
        lambda: services.metering.budgets.update(budget_id, body.limit),
        action="credits.budget_change",
        actor=principal.actor,
        target=f"budget:{budget_id}",
        details=body.model_dump(mode="json"),
    )
    return budget.as_dict()


@credits.delete("/budgets/{budget_id}", status_code=204)
async def delete_budget(budget_id: RowId, principal: Admin, services: ServicesDep) -> Response:
    """Remove a budget; audited."""
    await call(
        services.audited,
        lambda: services.metering.budgets.delete(budget_id),
        action="credits.budget_delete",
        actor=principal.actor,
        target=f"budget:{budget_id}",
    )
    return Response(status_code=204)


@credits.post("/vouchers")
async def redeem_voucher(
    body: VoucherBody, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    """Redeem a signed single-use top-up voucher; audited."""
    metering = services.metering
    voucher = await call(metering.license.verify_voucher, body.voucher)
    after = await call(
        services.audited,
        lambda: metering.meter.redeem(voucher, principal.actor),
        action="credits.voucher_redeem",
        actor=principal.actor,
        target=f"voucher:{voucher.voucher_id}",
        details={"credits": voucher.credits},
    )
    return {"redeemed": voucher.voucher_id, **after.as_dict()}


def _is_admin(principal: Principal) -> bool:
    return principal.role is Role.ADMIN and principal.has_scope("admin")


@notifications.get("")
async def list_notifications(
    principal: AnyUser, services: ServicesDep, unread: bool = False
) -> list[dict[str, Any]]:
    """The caller's notices (admins also see the admins' ones), newest first."""
    return await call(
        services.metering.notifications.list_for, principal.user.id, _is_admin(principal), unread
    )


@notifications.post("/{notification_id}/read", status_code=204)
async def mark_read(notification_id: int, principal: AnyUser, services: ServicesDep) -> Response:
    """Mark one notice read (an admins' notice: for every admin)."""
    await call(
        services.metering.notifications.mark_read,
        notification_id,
        principal.user.id,
        _is_admin(principal),
    )
    return Response(status_code=204)
