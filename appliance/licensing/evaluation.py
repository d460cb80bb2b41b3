"""The evaluation license shipped in the package: a signed license with ``evaluation: true``.

An administrator starts it from the first-run wizard (or ``enclave license evaluate``) instead
of importing a license file. It runs for ``evaluation_days`` from the moment it is started
(the import time, taken from the clock's high-water mark, so setting the clock back cannot
extend it); its signed ``expires_at`` is only the last day on which it can be started. It can
be started once per home, and only on a home that has never had a license.

The file is signed with the vendor key like any license: a production build re-signs it with
the vendor's real key (``enclave-vendor license --evaluation-days``), see docs/admin.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.licensing.document import LicensePayload
from appliance.licensing.errors import EvaluationUnavailable
from appliance.licensing.models import LicenseRecord

SHIPPED_EVALUATION = Path(__file__).parent / "vendor_keys" / "evaluation.lic"


def read_evaluation(path: Path) -> bytes:
    """The evaluation license file's bytes, or :class:`EvaluationUnavailable`."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EvaluationUnavailable(
            "This build ships no evaluation license; import the license file from the vendor."
        ) from exc


def activated(lic: LicensePayload, started_at: datetime) -> LicensePayload:
    """An evaluation license as it is in force after being started at ``started_at``: it
    expires ``evaluation_days`` later (the grace period still follows)."""
    days = lic.evaluation_days or 0
    return lic.model_copy(update={"expires_at": started_at + timedelta(days=days)})


def ensure_evaluation_allowed(session: Session) -> None:
    """Refuse an evaluation on a home that has had any license (an evaluation included): the
    evaluation is for a fresh home, once. Runs inside the import's write transaction."""
    imported = session.scalar(select(func.count()).select_from(LicenseRecord)) or 0
    if imported:
        raise EvaluationUnavailable(
            "This home already has (or had) a license, so the evaluation cannot be started "
            "(it runs once per home). Import the license file from the vendor."
        )
