"""Group commit on the real encrypted database: concurrent operations share transactions, yet
each caller gets exactly its own outcome — a failing operation changes nothing and costs the
others nothing — and a caller already inside a write transaction joins it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from appliance import Appliance
from appliance.credits.group_commit import GroupCommit
from appliance.credits.models import Notification
from appliance.credits.notifications import notify
from appliance.credits.tx import Tx
from tests.conftest import PASSPHRASE, make_settings


@pytest.fixture
def appliance(home_dir: Path) -> Iterator[Appliance]:
    app = Appliance(make_settings(home_dir))
    app.initialise(PASSPHRASE)
    yield app
    app.seal()


def _stored(app: Appliance, prefix: str) -> set[str]:
    with app.db.read() as session:
        keys = session.scalars(
            select(Notification.dedupe_key).where(Notification.dedupe_key.like(f"{prefix}%"))
        )
        return {k for k in keys if k}


def test_concurrent_operations_share_transactions_and_all_commit(appliance: Appliance) -> None:
    group = GroupCommit(appliance.db)
    first_in = threading.Event()
    transactions: list[int] = []

    def op(i: int) -> int:
        def write(tx: Tx) -> int:
            transactions.append(id(tx))
            if i == 0:
                first_in.set()
                time.sleep(0.3)  # the others queue up behind this transaction meanwhile
            notify(tx, "test", f"op {i}", dedupe_key=f"gc:{i}")
            return i

        return group.run(write)

    with ThreadPoolExecutor(max_workers=16) as pool:
        first = pool.submit(op, 0)
        assert first_in.wait(10)
        rest = list(pool.map(op, range(1, 40)))
    assert [first.result(), *rest] == list(range(40))
    assert _stored(appliance, "gc:") == {f"gc:{i}" for i in range(40)}
    assert len(set(transactions)) < 40  # some operations shared a transaction


def test_a_failing_operation_changes_nothing_and_the_others_commit(appliance: Appliance) -> None:
    group = GroupCommit(appliance.db)
    gate = threading.Event()

    def op(i: int) -> str:
        def write(tx: Tx) -> None:
            if i == 0:
                gate.wait(10)  # hold the first transaction so the rest form one batch
            notify(tx, "test", f"op {i}", dedupe_key=f"fail:{i}")
            if i == 7:
                raise ValueError("operation 7 fails after writing")

        try:
            group.run(write)
        except ValueError as exc:
            return str(exc)
        return "ok"

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(op, i) for i in range(16)]
        time.sleep(0.3)
        gate.set()
        outcomes = [f.result(timeout=30) for f in futures]
    assert outcomes[7] == "operation 7 fails after writing"
    assert outcomes.count("ok") == 15
    assert _stored(appliance, "fail:") == {f"fail:{i}" for i in range(16) if i != 7}


def test_inside_a_write_transaction_it_joins_it(appliance: Appliance) -> None:
    group = GroupCommit(appliance.db)

    def write(tx: Tx) -> bool:
        return notify(tx, "test", "joined", dedupe_key="joined:1")

    with pytest.raises(RuntimeError), appliance.db.write():
        assert group.run(write) is True
        raise RuntimeError("the outer unit of work fails")
    assert _stored(appliance, "joined:") == set()  # rolled back with it
    with appliance.db.write():
        group.run(write)
    with appliance.db.read() as session:
        count = session.scalar(select(func.count()).select_from(Notification))
    assert count == 1
