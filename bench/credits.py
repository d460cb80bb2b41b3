"""Credits benchmark: what metering costs.

Run ``.venv/bin/python -m bench.credits`` (``--pairs N``, default 2000; ``--steps N`` for the
hook, default 500). Nothing is asserted; it prints figures and ratios against goals.

On a temporary SQLCipher home with a test vendor key and a licensed balance it measures:

* reserve+settle pairs/s, single-threaded and from 16 threads (goal ≥ 2,000/s); each pair is
  two write transactions (``BEGIN IMMEDIATE``, ledger tail read, hash-chained appends) on the
  meter's own DB-API connection (``Database.write_dbapi``), concurrent ones group-committed;
* the CPU time each pair costs this process (``time.process_time``), and so the pairs per
  CPU-second: on a shared machine the wall-clock rate is mostly how much CPU the others leave,
  the CPU cost is what the code itself needs;
* the pages a reserve and a settle each write (WAL frames, counted with checkpoints held off):
  SQLCipher encrypts and signs every one, so they are most of what a pair costs;
* baselines in the same run: write transactions/s changing one row (one page), on the raw path
  and through a Session — a pair is two write transactions of several pages each (ledger entry,
  reservation row, the partial indexes they fall in, ``sqlite_sequence``), so half the raw rate
  is a loose ceiling;
* the overhead the credit hook adds to one engine step: ``before_model_call`` +
  ``after_model_call`` (with usage) on the event loop, p50/p95 in ms (goal ≤ 1 ms at p50),
  against the neutral :class:`engine.hooks.Hooks` measured in the same run (the baseline).

The load average is printed before and after: the figures are only comparable between runs on
a similarly loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from appliance import Appliance
    from engine.hooks import Hooks

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ would be first on sys.path, and its sibling benches (e.g. engine.py)
# would shadow the project's packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

PAIRS_GOAL = 2000.0
HOOK_P50_GOAL_MS = 1.0


def vendor_tool() -> Any:
    """The vendor tool (packaging/vendor), importable without installing it."""
    sys.path.insert(0, str(ROOT / "packaging" / "vendor"))
    return importlib.import_module("enclave_vendor")


def setup(work: Path) -> Appliance:
    from appliance import Appliance, EnclaveSettings

    tool = vendor_tool()
    tool.generate_keypair(work / "vendor")
    issuer = tool.Issuer(work / "vendor")
    settings = EnclaveSettings.model_validate(
        {
            "home": work / "home",
            "kdf_time_cost": 1,
            "kdf_memory_kib": 8192,
            "kdf_parallelism": 1,
            "license_public_keys": work / "vendor" / "vendor-ed25519.pem",
            "log_level": "ERROR",
        }
    )
    app = Appliance(settings)
    app.initialise("a long bench passphrase for the vault")
    _, data = issuer.issue_license(customer="bench", credits_once="100000000")
    app.services.metering.license.import_license(data)
    return app


def empty_writes_per_second(app: Appliance, count: int) -> float:
    """The Session floor: write transactions/s that change one row (a new value: SQLite
    writes nothing for an unchanged one) and append nothing."""
    from sqlalchemy import text

    from appliance.credits.tx import sqlite_time

    update = text("UPDATE license_clock SET checked_at = :t WHERE id = 1")
    start = time.perf_counter()
    for _ in range(count):
        with app.db.write() as session:
            session.execute(update, {"t": sqlite_time(datetime.now(UTC))})
    return count / (time.perf_counter() - start)


def raw_writes_per_second(app: Appliance, count: int) -> float:
    """The raw path's floor: the same one-row UPDATE on the writer's DB-API connection."""
    from appliance.credits.tx import sqlite_time

    start = time.perf_counter()
    for _ in range(count):
        with app.db.write_dbapi() as cursor:
            cursor.execute(
                "UPDATE license_clock SET checked_at = ? WHERE id = 1",
                (sqlite_time(datetime.now(UTC)),),
            )
    return count / (time.perf_counter() - start)


def pairs_per_second(app: Appliance, pairs: int, threads: int) -> tuple[float, float]:
    """(pairs/s by the wall clock, CPU seconds of this process per pair)."""
    meter = app.services.metering.meter

    def pair(_: int) -> None:
        hold = meter.reserve(
            principal="user:1", provider="local", model="m", prompt_tokens=200, max_tokens=256
        )
        assert hold is not None
        meter.settle(hold.id, 200, 100)

    start, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        for i in range(pairs):
            pair(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(pair, range(pairs)))
    return pairs / (time.perf_counter() - start), (time.process_time() - cpu) / pairs


def frames_per_call(app: Appliance, home: Path, pairs: int = 200) -> tuple[float, float]:
    """(WAL frames per reserve, per settle): the pages each transaction writes, measured by the
    WAL's growth with automatic checkpoints held off (each frame is a page plus a 24-byte
    header; the file starts with a 32-byte header after a truncating checkpoint)."""
    meter = app.services.metering.meter
    wal = home / "enclave.db-wal"

    def pragma(sql: str) -> None:  # on the raw writer's connection (the meter's), in a tx
        with app.db.write_dbapi() as cursor:
            cursor.execute(sql)
            cursor.fetchall()

    def checkpoint() -> None:  # outside any transaction, on the writer pool's connection
        raw = app.db.writer.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    pragma("PRAGMA wal_autocheckpoint = 0")
    checkpoint()
    page = 4096 + 24
    reserve = settle = 0
    try:
        for _ in range(pairs):
            before = wal.stat().st_size
            hold = meter.reserve(
                principal="user:1", provider="local", model="m", prompt_tokens=200, max_tokens=256
            )
            assert hold is not None
            middle = wal.stat().st_size
            meter.settle(hold.id, 200, 100)
            reserve += middle - before
            settle += wal.stat().st_size - middle
    finally:
        pragma("PRAGMA wal_autocheckpoint = 1000")
    first = 32  # the WAL header, written with the first frame
    return (reserve - first) / page / pairs, settle / page / pairs


def session_pairs_per_second(app: Appliance, pairs: int) -> tuple[float, float]:
    """The baseline path: the same pairs with every statement through a Session
    (:class:`SessionTx`), as all metering ran before the raw DB-API path."""
    from contextlib import contextmanager

    from appliance.credits import group_commit
    from appliance.credits.tx import SessionTx

    db = app.db

    @contextmanager
    def through_session(_db: object) -> Iterator[SessionTx]:
        with db.write() as session:
            yield SessionTx(session)

    raw = group_commit.write_tx
    group_commit.write_tx = through_session  # type: ignore[assignment]
    try:
        return pairs_per_second(app, pairs, 1)
    finally:
        group_commit.write_tx = raw


async def step_times(hooks: Hooks, steps: int) -> list[float]:
    from engine.hooks import ModelCall
    from engine.providers.base import Usage

    times = []
    usage = Usage(200, 100)
    for step in range(steps):
        call = ModelCall("run", step, "user:1", "agent", "local", "m", 200, 256)
        start = time.perf_counter()
        reservation = await hooks.before_model_call(call)
        await hooks.after_model_call(call, usage, reservation, None)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-credits-"))
    try:
        app = setup(work)
        floor = empty_writes_per_second(app, args.pairs)
        raw_floor = raw_writes_per_second(app, args.pairs)
        single, single_cpu = pairs_per_second(app, args.pairs, 1)
        orm, orm_cpu = session_pairs_per_second(app, args.pairs)
        threaded, threaded_cpu = pairs_per_second(app, args.pairs, 16)
        reserve_frames, settle_frames = frames_per_call(app, work / "home")
        hook = app.services.metering.hook()
        asyncio.run(step_times(hook, 20))  # warm-up
        from engine.hooks import Hooks

        base = asyncio.run(step_times(Hooks(), args.steps))
        metered = asyncio.run(step_times(hook, args.steps))
        ok = app.services.metering.meter.verify()
        app.seal()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    base_p50, hook_p50 = statistics.median(base), statistics.median(metered)
    hook_p95 = statistics.quantiles(metered, n=20)[-1]
    cores = os.cpu_count() or 1
    print(
        f"machine: {cores} CPU(s), load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (1 min)"
    )
    for label, rate, cpu in (
        ("1 thread:  ", single, single_cpu),
        ("16 threads:", threaded, threaded_cpu),
    ):
        print(
            f"reserve+settle pairs/s, {label} {rate:8.0f}  ({rate / PAIRS_GOAL:.2f}x goal "
            f"{PAIRS_GOAL:.0f}); CPU {cpu * 1e6:6.0f} us/pair = {1 / cpu:6.0f} pairs per "
            "CPU-second"
        )
    print(
        f"pages written (WAL frames) per reserve: {reserve_frames:4.1f}, per settle: "
        f"{settle_frames:4.1f}, per pair: {reserve_frames + settle_frames:4.1f}"
    )
    print(
        f"baseline: 1-row raw write tx/s:     {raw_floor:8.0f}  (a pair is 2 write tx: "
        f"ceiling < {raw_floor / 2:.0f} pairs/s)"
    )
    print(f"baseline: 1-row Session write tx/s: {floor:8.0f}  (the same UPDATE through a Session)")
    print(
        f"baseline: pairs/s through a Session: {orm:7.0f}  (CPU {orm_cpu * 1e6:.0f} us/pair); "
        f"raw path / Session: {single / orm:.2f}x pairs/s, {orm_cpu / single_cpu:.2f}x less CPU"
    )
    print(f"pairs/s vs the raw ceiling:         {single / (raw_floor / 2):8.2f}")
    print(f"16 threads / 1 thread:              {threaded / single:8.2f}")
    print(
        f"hook per engine step p50:           {hook_p50:8.3f} ms  (neutral hooks "
        f"{base_p50:.4f} ms; goal <= {HOOK_P50_GOAL_MS} ms)"
    )
    print(f"hook per engine step p95:           {hook_p95:8.3f} ms")
    print(f"hook overhead p50 vs neutral:       {hook_p50 - base_p50:8.3f} ms")
    print(f"ledger verifies: {ok.ok} ({ok.count} entries)")


if __name__ == "__main__":
    main()
