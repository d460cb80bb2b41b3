"""The license in force: import, verification, states, seats and the clock high-water mark.

States (from the effective time, see below):

* ``unlicensed`` — nothing imported: no seat limit, credits unmetered (``read_only`` instead
  when ``ENCLAVE_LICENSE_REQUIRED`` is set);
* ``valid`` → ``expiring`` (the last 30 days; notices at 30, 7 and 1 days) → ``grace`` (after
  ``expires_at``, for ``grace_days``: full function, a banner) → ``read_only`` (no new runs;
  every byte still readable and exportable). Importing a new license restores ``valid``.

The effective time is the latest of the system clock, the highest time the appliance has seen
(persisted) and — in a running process — that high-water mark plus the monotonic time elapsed
since it was last moved. So setting the clock back cannot extend a license: while the clock is
behind, time still counts. A clock earlier than the last check makes a check due at once, so a
rollback of more than ``ROLLBACK_TOLERANCE`` is recorded, notified to the admins and reported by
``status`` within one poll of the schedule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from appliance.credits.notifications import notify
from appliance.identity.models import User
from appliance.licensing.document import (
    LicensePayload,
    VoucherPayload,
    as_bytes,
    normalised_file,
    parse_license,
    parse_voucher,
    verify_signed,
)
from appliance.licensing.errors import (
    EvaluationUnavailable,
    LicenseExpired,
    LicenseInvalid,
    LicenseNotYetValid,
    LicenseWrongMachine,
    NoLicense,
    SeatsExceeded,
    VoucherWrongLicense,
)
from appliance.licensing.evaluation import (
    SHIPPED_EVALUATION,
    activated,
    ensure_evaluation_allowed,
    read_evaluation,
)
from appliance.licensing.models import LicenseClock, LicenseRecord
from appliance.store.database import Database
from appliance.store.schema import utcnow

log = structlog.get_logger(__name__)
EXPIRY_NOTICES = (30, 7, 1)
ROLLBACK_TOLERANCE = timedelta(minutes=10)
CHECK_EVERY = timedelta(days=1)
RELOAD_EVERY = 30.0  # seconds: another process may have imported a license

GrantListener = Callable[[Session, LicensePayload, datetime], None]


class LicenseState(StrEnum):
    UNLICENSED = "unlicensed"
    VALID = "valid"
    EXPIRING = "expiring"
    GRACE = "grace"
    READ_ONLY = "read_only"


@dataclass(frozen=True)
class LicenseStatus:
    """The license in force and what it means now."""

    state: LicenseState
    license: LicensePayload | None
    now: datetime
    days_left: int | None
    rollback_detected_at: datetime | None

    @property
    def read_only(self) -> bool:
        return self.state is LicenseState.READ_ONLY

    @property
    def metered(self) -> bool:
        """Whether credits are charged (a license is in force)."""
        return self.license is not None

    def has_feature(self, feature: str) -> bool:
        """Whether the tier includes ``feature`` (unlicensed, or an evaluation of the whole
        product: everything; a downgrade makes what the new tier lacks read-only, never
        deleted — see :mod:`appliance.licensing.features`)."""
        lic = self.license
        return lic is None or lic.evaluation or feature in lic.features

    def as_dict(self) -> dict[str, Any]:
        lic = self.license
        return {
            "state": self.state.value,
            "days_left": self.days_left,
            "clock_rollback_detected_at": (
                self.rollback_detected_at.isoformat() if self.rollback_detected_at else None
            ),
            "license": None if lic is None else lic.model_dump(mode="json"),
        }


def state_at(lic: LicensePayload | None, now: datetime, required: bool) -> LicenseState:
    """The state ``lic`` is in at ``now``."""
    if lic is None:
        return LicenseState.READ_ONLY if required else LicenseState.UNLICENSED
    if now < lic.not_before:
        return LicenseState.READ_ONLY
    if now <= lic.expires_at - timedelta(days=EXPIRY_NOTICES[0]):
        return LicenseState.VALID
    if now <= lic.expires_at:
        return LicenseState.EXPIRING
    if now <= lic.expires_at + timedelta(days=lic.grace_days):
        return LicenseState.GRACE
    return LicenseState.READ_ONLY


class LicenseService:
    """The license of one appliance (``machine_id`` is its installation id)."""

    def __init__(
        self,
        db: Database,
        keys: dict[str, Ed25519PublicKey],
        machine_id: str,
        *,
        required: bool = False,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] | None = None,
        evaluation_file: Path = SHIPPED_EVALUATION,
    ) -> None:
        self.db = db
        self.evaluation_file = evaluation_file
        self.keys = keys
        self.machine_id = machine_id
        self.required = required
        self._clock = clock
        self._monotonic = monotonic or time.monotonic
        self._stored_invalid = False
        self._lock = threading.Lock()
        self._license: LicensePayload | None = None
        self._high_water: datetime | None = None
        self._rollback_at: datetime | None = None
        self._loaded_at: float | None = None
        self._checked_at: datetime | None = None
        # The high-water mark at this process's last check and the monotonic tick then.
        self._anchor: tuple[datetime, float] | None = None
        # How far the clock was behind at the last check (a new rollback adds to it).
        self._lag: timedelta | None = None
        self.grant_listeners: list[GrantListener] = []
        self._floors: tuple[LicensePayload, dict[str, tuple[int, int, int]]] | None = None

    # --- status -----------------------------------------------------------------------------

    def effective_now(self) -> datetime:
        """The latest of the clock, the persisted high-water mark and the time counted by the
        monotonic clock since this process's last check."""
        return max(
            t
            for t in (self._clock(), self._high_water, self._counted(self._monotonic()))
            if t is not None
        )

    def _counted(self, tick: float) -> datetime | None:
        """The high-water mark of the last check here plus the monotonic time since (which no
        change of the system clock affects)."""
        if self._anchor is None:
            return None
        high, at = self._anchor
        return high + timedelta(seconds=max(0.0, tick - at))

    def status(self) -> LicenseStatus:
        """The license in force and its state now (reloaded from the database every 30 s)."""
        self._reload_if_stale()
        now = self.effective_now()
        lic = self._license
        days = None if lic is None else (lic.expires_at - now).days
        state = (
            LicenseState.READ_ONLY if self._stored_invalid else state_at(lic, now, self.required)
        )
        return LicenseStatus(state, lic, now, days, self._rollback_at)

    def _reload_if_stale(self) -> None:
        tick = self._monotonic()
        if self._loaded_at is not None and tick - self._loaded_at < RELOAD_EVERY:
            return
        with self.db.read() as session:
            record = _active(session)
            clock = session.get(LicenseClock, 1)
        lic = self._verified(record)
        with self._lock:
            self._license = lic
            if clock is not None:
                self._high_water = max(clock.high_water, self._high_water or clock.high_water)
                self._rollback_at = clock.rollback_detected_at
            self._loaded_at = tick

    def invalidate(self) -> None:
        """Reload from the database at the next status (after an import here)."""
        self._loaded_at = None

    # --- import -----------------------------------------------------------------------------

    def verify_license(self, data: str | bytes) -> LicensePayload:
        """A license file's payload, checked: signature, dates and machine binding."""
        lic = parse_license(verify_signed(as_bytes(data), self.keys))
        now = self.effective_now()
        if now < lic.not_before:
            raise LicenseNotYetValid(
                f"License {lic.license_id} is valid from {lic.not_before.isoformat()}; "
                "import it then (or check this machine's clock)."
            )
        if lic.expires_at <= lic.not_before:
            raise LicenseInvalid("The license expires before it starts.")
        if state_at(lic, now, self.required) is LicenseState.READ_ONLY:
            raise LicenseExpired(
                f"License {lic.license_id} expired on {lic.expires_at.date().isoformat()} and "
                "its grace period is over; ask the vendor for a renewal."
            )
        if lic.machine_id is not None and lic.machine_id != self.machine_id:
            raise LicenseWrongMachine(
                f"License {lic.license_id} is bound to machine {lic.machine_id}; this "
                f"appliance is {self.machine_id}."
            )
        return lic

    def import_license(self, data: str | bytes) -> LicensePayload:
        """Verify and install a license (the previous one is kept, inactive); grants its
        credits in the same transaction. An evaluation license starts now (once per home) and
        is returned with its effective expiry."""
        raw = as_bytes(data)
        lic = self.verify_license(raw)
        now = self.effective_now()
        if lic.evaluation:
            lic = activated(lic, now)
        with self.db.write() as session:
            if lic.evaluation:
                ensure_evaluation_allowed(session)
            session.execute(update(LicenseRecord).values(active=False))
            session.add(
                LicenseRecord(
                    license_id=lic.license_id,
                    document=normalised_file(raw).decode("ascii"),
                    imported_at=now,
                    active=True,
                )
            )
            for listener in self.grant_listeners:
                listener(session, lic, now)
        self.invalidate()
        return lic

    def evaluation_offer(self) -> LicensePayload | None:
        """The shipped evaluation license when it can be started here (it verifies against
        the vendor keys, can still be started, and this home has never had a license)."""
        try:
            offer = self.verify_license(read_evaluation(self.evaluation_file))
            with self.db.read() as session:
                ensure_evaluation_allowed(session)
        except (EvaluationUnavailable, LicenseInvalid, LicenseExpired, LicenseNotYetValid):
            return None
        return offer if offer.evaluation else None

    def start_evaluation(self) -> LicensePayload:
        """Start the evaluation license shipped in the package (once per home): it runs for
        its ``evaluation_days`` from now."""
        data = read_evaluation(self.evaluation_file)
        if not self.verify_license(data).evaluation:
            raise EvaluationUnavailable("The shipped file is not an evaluation license.")
        return self.import_license(data)

    def verify_voucher(self, data: str | bytes) -> VoucherPayload:
        """A voucher's payload, checked: signature, expiry and that it is for this license."""
        voucher = parse_voucher(verify_signed(as_bytes(data), self.keys))
        status = self.status()
        if status.license is None:
            raise NoLicense("Import the license before redeeming its vouchers.")
        if voucher.license_id != status.license.license_id:
            raise VoucherWrongLicense(
                f"Voucher {voucher.voucher_id} is for license {voucher.license_id}; the "
                f"license in force is {status.license.license_id}."
            )
        if voucher.expires_at is not None and status.now > voucher.expires_at:
            raise LicenseExpired(
                f"Voucher {voucher.voucher_id} expired on {voucher.expires_at.date().isoformat()}."
            )
        return voucher

    # --- periodic check ---------------------------------------------------------------------

    def check(self) -> LicenseStatus:
        """Re-verify the stored license, move the clock high-water mark (detecting a rollback),
        give expiry notices and run the grant listeners (monthly credits). At every unseal and
        daily."""
        now, tick = self._clock(), self._monotonic()
        counted = self._counted(tick)
        with self.db.write() as session:
            clock = session.get(LicenseClock, 1)
            if clock is None:
                clock = LicenseClock(id=1, high_water=max(now, counted or now))
                session.add(clock)
            high = max(clock.high_water, counted or clock.high_water)
            lag = high - now
            seen = self._lag  # the lag already reported (at the last check here), if any
            if lag > ROLLBACK_TOLERANCE and (
                seen is None or seen <= ROLLBACK_TOLERANCE or lag > seen + ROLLBACK_TOLERANCE
            ):
                # A new rollback, not the one reported at the last check and still uncorrected.
                clock.rollback_detected_at = high
                clock.rollback_clock = now
                notify(
                    session,
                    "clock_rollback",
                    f"The system clock reads {now.isoformat()}, earlier than the "
                    f"{high.isoformat()} already seen: it was set back. License "
                    "dates use the later time. Check the clock (NTP) of this machine.",
                    dedupe_key=f"clock_rollback:{high.isoformat()}",
                    now=now,
                )
            clock.high_water = max(high, now)
            clock.checked_at = now
            self._high_water = clock.high_water
            self._rollback_at = clock.rollback_detected_at
            self.invalidate()
            self._reload_in(session)
            status = self.status()
            self._notify_state(session, status)
            if status.license is not None and not status.read_only:
                for listener in self.grant_listeners:
                    listener(session, status.license, status.now)
        self._checked_at = now
        self._anchor = (max(high, now), tick)
        self._lag = max(lag, timedelta(0))
        return status

    def check_due(self) -> bool:
        """Whether a :meth:`check` is due: none ran in this process, a day has passed since the
        last one (by the clock, or by the monotonic clock), or the clock now reads earlier than
        at the last check — it was set back, which the check detects and reports."""
        last, anchor = self._checked_at, self._anchor
        if last is None or anchor is None:
            return True
        gap = self._clock() - last
        ran_for = self._monotonic() - anchor[1]
        return gap < timedelta(0) or gap >= CHECK_EVERY or ran_for >= CHECK_EVERY.total_seconds()

    def maybe_check(self) -> None:
        """Run :meth:`check` when it is due (:meth:`check_due`)."""
        if self.check_due():
            self.check()

    def _reload_in(self, session: Session) -> None:
        lic = self._verified(_active(session))
        self._license, self._loaded_at = lic, self._monotonic()

    def _verified(self, record: LicenseRecord | None) -> LicensePayload | None:
        """The stored license, re-verified; a stored file that no longer verifies (altered in
        the database, or the vendor key is gone) makes the appliance read-only."""
        self._stored_invalid = False
        if record is None:
            return None
        try:
            lic = parse_license(verify_signed(record.document.encode("ascii"), self.keys))
            return activated(lic, record.imported_at) if lic.evaluation else lic
        except LicenseInvalid as exc:
            log.error("license.stored_invalid", license_id=record.license_id, reason=exc.message)
            self._stored_invalid = True
            return None

    def _notify_state(self, session: Session, status: LicenseStatus) -> None:
        lic = status.license
        if lic is None or status.days_left is None:
            return
        if status.state is LicenseState.EXPIRING:
            due = [d for d in EXPIRY_NOTICES if status.days_left < d]
            if due:
                threshold = min(due)
                notify(
                    session,
                    "license_expiring",
                    f"License {lic.license_id} expires on {lic.expires_at.date().isoformat()} "
                    f"(in {max(status.days_left, 0) + 1} days or fewer); import a renewal.",
                    dedupe_key=f"license_expiring:{lic.license_id}:{threshold}",
                    now=status.now,
                )
        elif status.state in (LicenseState.GRACE, LicenseState.READ_ONLY):
            notify(
                session,
                f"license_{status.state.value}",
                f"License {lic.license_id} expired on {lic.expires_at.date().isoformat()}: "
                + (
                    "Enclave works fully during the grace period; import a renewal."
                    if status.state is LicenseState.GRACE
                    else "Enclave is read-only (no new runs). Import a new license."
                ),
                dedupe_key=f"license_{status.state.value}:{lic.license_id}",
                now=status.now,
            )

    # --- seats ------------------------------------------------------------------------------

    def check_seat(self, session: Session) -> None:
        """Raise :class:`SeatsExceeded` when one more active user would exceed the seats (a
        :class:`~appliance.identity.users.UserService` activation guard: runs inside its write
        transaction, so concurrent creations cannot both take the last seat)."""
        lic = self.status().license
        if lic is None:
            return
        used = session.scalar(select(func.count()).select_from(User).where(~User.disabled)) or 0
        if used + 1 > lic.seats:
            raise SeatsExceeded(
                f"All {lic.seats} seats of license {lic.license_id} are taken ({used} active "
                "users): disable a user or import a license with more seats."
            )

    def seats_used(self) -> int:
        """Active (enabled) users."""
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(User).where(~User.disabled)) or 0

    def price_floors(self) -> dict[str, tuple[int, int, int]]:
        """The license in force's minimum prices per class (``local``/``remote``/``tool``:
        input and output per 1k tokens, per second; micro-credits). Empty without a license or
        without minimums."""
        self._reload_if_stale()  # the license only, not its state (on every charge's path)
        lic = self._license
        if lic is None or not lic.min_prices:
            return {}
        cached = self._floors
        if cached is not None and cached[0] is lic:
            return cached[1]
        floors: dict[str, tuple[int, int, int]] = {
            str(name): floor.micro() for name, floor in lic.min_prices.items()
        }
        self._floors = (lic, floors)
        return floors

    def seat_report(self) -> dict[str, Any]:
        """Seats licensed and used, and whether more users are active than the license allows
        (after importing a license with fewer seats: it is still imported — a downgrade never
        loses data — but no user can be added or enabled, and the admin is told how many to
        disable)."""
        lic = self.status().license
        used = self.seats_used()
        over = 0 if lic is None else max(0, used - lic.seats)
        message = None
        if lic is not None and over:
            message = (
                f"License {lic.license_id} has {lic.seats} seats but {used} users are active: "
                f"disable {over} user{'s' if over > 1 else ''} to be within the license (no "
                "user can be added or enabled until then)."
            )
        return {
            "seats": None if lic is None else lic.seats,
            "seats_used": used,
            "over_seats": over > 0,
            "seats_message": message,
        }


def _active(session: Session) -> LicenseRecord | None:
    return session.scalar(
        select(LicenseRecord).where(LicenseRecord.active).order_by(LicenseRecord.id.desc()).limit(1)
    )
