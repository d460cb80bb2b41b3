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
from appliance.credits.ledger import VerifyResult, ledger_key, verify
from appliance.credits.meter import CreditMeter
from appliance.credits.notifications import NotificationService
from appliance.credits.prices import PriceTable
from appliance.errors import DatabaseCorrupt, EnclaveError
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

    def release_abandoned(self) -> None:
        """Release the reservations of ended processes (a crash) and expired ones."""
        released = self.meter.expire_stale()
        if released:
            log.info("credits.reservations_expired", count=released)

    def daily(self) -> None:
        """Release reservations left by a crash, then check the license (signature, clock,
        expiry notices, monthly grant). At unseal and then daily, model calls or not."""
        self.release_abandoned()
        self.license.check()

    def poll(self) -> bool:
        """At every poll of the schedule: release abandoned reservations (a read when there
        are none), then say whether the daily check is due."""
        try:
            self.release_abandoned()
        except EnclaveError as exc:  # e.g. the disk is full: the license check still runs
            log.error("credits.release_failed", code=exc.code, reason=exc.message)
        return self.license.check_due()

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
    prices = PriceTable(db, floors=licensing.price_floors)
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
        DailyCheck(lambda: metering.poll(), lambda: metering.daily(), poll_s=poll_s),
    )
    return metering


def verify_ledger(db: Database) -> VerifyResult:
    """Check the ledger of ``db`` without wiring the metering: no license check, no grant,
    no expiry sweep, so nothing is appended to the ledger being checked."""
    return verify(db, ledger_key(ensure_audit_key(db)))
