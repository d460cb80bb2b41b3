"""The meter's raw SQL path stores times exactly as the ORM does, so rows written either way
compare, sort and load alike (budgets sum by ``created_at >= since``); a write nested in a raw
one on the same thread fails at once rather than deadlocking on the writer's lock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from appliance import Appliance
from appliance.credits.tx import _time_binder, sqlite_time
from tests.conftest import PASSPHRASE, make_settings

MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 3, 1),  # naive: taken as UTC, as the ORM's column type does
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_raw_times_are_what_the_orm_stores(moment: datetime) -> None:
    assert sqlite_time(moment) == _time_binder(sqlite.dialect())(moment)


def test_a_nested_write_fails_at_once_instead_of_hanging(tmp_path: Path) -> None:
    app = Appliance(make_settings(tmp_path / "home"))
    app.initialise(PASSPHRASE)
    try:
        with app.db.write_dbapi():
            with pytest.raises(RuntimeError), app.db.write():
                pass
            with pytest.raises(RuntimeError), app.db.write_dbapi():
                pass
        with app.db.write(), pytest.raises(RuntimeError), app.db.write_dbapi():
            pass
        with app.db.write_dbapi() as cursor:  # the lock was released each time
            cursor.execute("SELECT 1")
    finally:
        app.seal()


def test_the_raw_writer_rolls_back_reopens_and_follows_a_rekey(tmp_path: Path) -> None:
    """The raw path's own connection: a failed transaction leaves the data as it was and the
    connection usable; dispose() closes it and the next write opens it again; after a rekey it
    opens under the new key (also on the Database object the appliance replaced)."""
    app = Appliance(make_settings(tmp_path / "home"))
    app.initialise(PASSPHRASE)
    update = "UPDATE license_clock SET checked_at = ? WHERE id = 1"
    read = "SELECT checked_at FROM license_clock WHERE id = 1"
    try:
        with app.db.write_dbapi() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO license_clock (id, high_water, checked_at) VALUES (1, ?, ?)",
                ("2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.000000"),
            )
        with pytest.raises(ZeroDivisionError), app.db.write_dbapi() as cursor:
            cursor.execute(update, ("2030-01-01 00:00:00.000000",))
            _ = 1 / 0
        with app.db.write_dbapi() as cursor:
            assert cursor.execute(read).fetchone() == ("2026-01-01 00:00:00.000000",)
            first = cursor.connection
        app.db.dispose()
        with app.db.write_dbapi() as cursor:
            assert cursor.connection is not first
            cursor.execute(update, ("2026-02-01 00:00:00.000000",))
        before_rekey = app.db
        app.rekey(PASSPHRASE, None, actor="test")
        with before_rekey.write_dbapi() as cursor:
            cursor.execute(update, ("2026-02-15 00:00:00.000000",))
        before_rekey.dispose()
        with app.db.write_dbapi() as cursor:
            assert cursor.execute(read).fetchone() == ("2026-02-15 00:00:00.000000",)
            cursor.execute(update, ("2026-03-01 00:00:00.000000",))
        with app.db.write_dbapi() as cursor:
            assert cursor.execute(read).fetchone() == ("2026-03-01 00:00:00.000000",)
    finally:
        app.seal()


def test_dispose_lets_a_raw_write_in_flight_commit_first(tmp_path: Path) -> None:
    app = Appliance(make_settings(tmp_path / "home"))
    app.initialise(PASSPHRASE)
    started, errors = threading.Event(), []

    def write() -> None:
        try:
            with app.db.write_dbapi() as cursor:
                started.set()
                time.sleep(0.3)
                cursor.execute(
                    "INSERT OR REPLACE INTO license_clock (id, high_water) VALUES (1, ?)",
                    ("2026-04-01 00:00:00.000000",),
                )
        except BaseException as exc:  # reported below: the write must not fail
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert started.wait(10)
        app.db.dispose()  # waits for the transaction instead of closing it underneath
        writer.join(10)
        assert errors == []
        with app.db.read() as session:
            stored = session.execute(text("SELECT high_water FROM license_clock")).all()
        assert [tuple(r) for r in stored] == [("2026-04-01 00:00:00.000000",)]
    finally:
        writer.join(10)
        app.seal()
