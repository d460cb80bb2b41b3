"""Licensing and credits wired together for one unsealed appliance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

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
from appliance.licensing.service import LicenseService
from appliance.settings import EnclaveSettings
from appliance.store.database import Database
from appliance.store.schema import Installation

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

    def hook(self) -> CreditsHook:
        """The engine hook that meters model calls and tool time."""
        return CreditsHook(self.meter)

    def start(self) -> None:
        """At unseal: release reservations left by a crash, then check the license (signature,
        clock, expiry notices, monthly grant)."""
        expired = self.meter.expire_stale()
        if expired:
            log.info("credits.reservations_expired", count=expired)
        self.license.check()


def build_metering(db: Database, settings: EnclaveSettings, users: UserService) -> Metering:
    """Wire licensing and credits over ``db``; seats are enforced through ``users``."""
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
    )
    users.activation_guards.append(licensing.check_seat)
    return Metering(
        licensing,
        meter,
        prices,
        budgets,
        NotificationService(db),
        UsageAnalytics(db, meter),
    )
