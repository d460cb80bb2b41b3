"""Licensing and credits wired together for one unsealed appliance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from appliance.audit import ensure_audit_key
from appliance.credits.analytics import UsageAnalytics
from appliance.credits.budgets import BudgetService
from appliance.credits.hooks import CreditsHook
from appliance.credits.ledger import ledger_key
from appliance.credits.meter import CreditMeter
from appliance.credits.notifications import NotificationService
from appliance.credits.prices import PriceTable
from appliance.errors import DatabaseCorrupt
from appliance.identity.users import UserService
from appliance.licensing.keys import load_vendor_keys
from appliance.licensing.schedule import POLL_SECONDS, DailyCheck
from appliance.licensing.service import LicenseService
from appliance.settings import EnclaveSettings
from appliance.store.database import Database
from appliance.store.schema import Installation, utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Metering:
    """The license in force and the credit meter, with what the API reads."""

    license: LicenseService
    meter: CreditMeter
    prices: PriceTable
    budgets: BudgetService
    notifications: NotificationService
    analytics: UsageAnalytics
    schedule: DailyCheck  # the daily check on its own thread (started by ``start``)

    def hook(self) -> CreditsHook:
        """The engine hook that meters model calls and tool time."""
        return CreditsHook(self.meter)

    def daily(self) -> None:
        """Release reservations left by a crash, then check the license (signature, clock,
        expiry notices, monthly grant). At unseal and then daily, model calls or not."""
        expired = self.meter.expire_stale()
        if expired:
            log.info("credits.reservations_expired", count=expired)
        self.license.check()

    def start(self) -> None:
        """At unseal: the check now, then daily on the schedule's thread."""
        self.daily()
        self.schedule.start()

    def stop(self) -> None:
        """At seal (or when the services are rebuilt): stop the schedule."""
        self.schedule.stop()


def build_metering(
    db: Database,
    settings: EnclaveSettings,
    users: UserService,
    *,
    clock: Callable[[], datetime] = utcnow,
    poll_s: float = POLL_SECONDS,
) -> Metering:
    """Wire licensing and credits over ``db``; seats are enforced through ``users``. ``clock``
    and ``poll_s`` are for tests (the license's time, and how often the schedule looks)."""
    with db.read() as session:
        machine_id = session.scalar(
            select(Installation.installation_id).where(Installation.id == 1)
        )
    if machine_id is None:
        raise DatabaseCorrupt("The database has no installation record.")
    licensing = LicenseService(
        db,
        load_vendor_keys(settings.license_public_keys),
        machine_id,
        required=settings.license_required,
        clock=clock,
    )
    prices = PriceTable(db)
    budgets = BudgetService(db)
    meter = CreditMeter(
        db,
        ledger_key(ensure_audit_key(db)),
        prices,
        budgets,
        licensing,
        reservation_ttl=timedelta(seconds=settings.reservation_expiry_seconds),
        clock=clock,
    )
    users.activation_guards.append(licensing.check_seat)
    metering = Metering(
        licensing,
        meter,
        prices,
        budgets,
        NotificationService(db),
        UsageAnalytics(db, meter),
        DailyCheck(licensing.check_due, lambda: metering.daily(), poll_s=poll_s),
    )
    return metering
