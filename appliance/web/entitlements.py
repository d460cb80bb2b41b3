"""License entitlements on the API: a router whose feature the license lacks is read-only.

``Depends(entitled(feature))`` on a router lets reads (GET, HEAD) through and refuses every
other method with 403 ``feature_not_licensed`` while the license in force does not include
``feature`` — so a downgrade never hides or deletes data, it only stops changes. The caller is
authenticated first (an anonymous request still gets 401).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from appliance.licensing.errors import FeatureNotLicensed
from appliance.licensing.features import FEATURES
from appliance.web.auth import CurrentUser, ServicesDep

READS = frozenset({"GET", "HEAD", "OPTIONS"})


def entitled(feature: str) -> Callable[..., Awaitable[None]]:
    """A dependency refusing changes under ``feature`` unless the license includes it."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")

    async def check(request: Request, _: CurrentUser, services: ServicesDep) -> None:
        if request.method in READS:
            return
        status = await run_in_threadpool(services.metering.license.status)
        if not status.has_feature(feature):
            tier = status.license.tier if status.license is not None else "?"
            raise FeatureNotLicensed(
                f"The {tier} license does not include `{feature}` ({FEATURES[feature]}): "
                "what exists stays readable, but nothing can be added or changed. Import a "
                "license that includes it."
            )

    return check
