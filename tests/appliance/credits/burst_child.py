"""A separate process reserving credits on the same SQLCipher file (for the burst test)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from appliance.credits.errors import CreditsExhausted
from appliance.credits.metering import build_metering
from appliance.home import Home
from appliance.identity.users import UserService
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from tests.conftest import make_settings


def reserve_many(
    home: str, key_hex: str, vendor_pem: str, count: int, go: Event, results: Queue
) -> None:
    """Open the database with the same key, wait for ``go``, then try ``count`` reservations;
    put (granted, refused) on ``results``."""
    settings = make_settings(Path(home), license_public_keys=Path(vendor_pem))
    db = Database(path=Home(settings.home).db_path, dek=DataKey(bytes.fromhex(key_hex)))
    try:
        meter = build_metering(db, settings, UserService(db)).meter
        granted = refused = 0
        go.wait(60)
        for _ in range(count):
            try:
                meter.reserve(
                    principal="user:1",
                    provider="local",
                    model="smol",
                    prompt_tokens=500,
                    max_tokens=500,
                )
                granted += 1
            except CreditsExhausted:
                refused += 1
        results.put((granted, refused))
    finally:
        db.dispose()
