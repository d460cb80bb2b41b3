"""Credits benchmark: what metering costs.

Run ``.venv/bin/python bench/credits.py`` (``--pairs N``, default 2000; ``--steps N`` for the
hook, default 500). Nothing is asserted; it prints figures and ratios against goals.

On a temporary SQLCipher home with a test vendor key and a licensed balance it measures:

* reserve+settle pairs/s, single-threaded and from 16 threads (goal ≥ 2,000/s); each pair is
  two write transactions (``BEGIN IMMEDIATE``, ledger tail read, hash-chained appends);
* a baseline in the same run: empty write transactions/s (one UPDATE, no ledger work), the
  store's floor — a pair is two write transactions, so half of it is the ceiling;
* the overhead the credit hook adds to one engine step: ``before_model_call`` +
  ``after_model_call`` (with usage) on the event loop, p50/p95 in ms (goal ≤ 1 ms at p50),
  against the neutral :class:`engine.hooks.Hooks` measured in the same run (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    """The store's floor: write transactions/s that change one row and append nothing."""
    from sqlalchemy import text

    start = time.perf_counter()
    for _ in range(count):
        with app.db.write() as session:
            session.execute(text("UPDATE license_clock SET checked_at = checked_at WHERE id = 1"))
    return count / (time.perf_counter() - start)


def pairs_per_second(app: Appliance, pairs: int, threads: int) -> float:
    meter = app.services.metering.meter

    def pair(_: int) -> None:
        hold = meter.reserve(
            principal="user:1", provider="local", model="m", prompt_tokens=200, max_tokens=256
        )
        assert hold is not None
        meter.settle(hold.id, 200, 100)

    start = time.perf_counter()
    if threads == 1:
        for i in range(pairs):
            pair(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(pair, range(pairs)))
    return pairs / (time.perf_counter() - start)


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
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-credits-"))
    try:
        app = setup(work)
        floor = empty_writes_per_second(app, args.pairs)
        single = pairs_per_second(app, args.pairs, 1)
        threaded = pairs_per_second(app, args.pairs, 16)
        hook = app.services.metering.hook()
        asyncio.run(step_times(hook, 20))  # warm-up
        from engine.hooks import Hooks

        base = asyncio.run(step_times(Hooks(), args.steps))
        metered = asyncio.run(step_times(hook, args.steps))
        ok = app.services.metering.meter.verify()
        app.seal()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_p50, hook_p50 = statistics.median(base), statistics.median(metered)
    hook_p95 = statistics.quantiles(metered, n=20)[-1]
    print(
        f"reserve+settle pairs/s, 1 thread:   {single:8.0f}  ({single / PAIRS_GOAL:.2f}x goal {PAIRS_GOAL:.0f})"
    )
    print(
        f"reserve+settle pairs/s, 16 threads: {threaded:8.0f}  ({threaded / PAIRS_GOAL:.2f}x goal)"
    )
    print(
        f"baseline: empty write tx/s:         {floor:8.0f}  (a pair is 2 write tx: ceiling {floor / 2:.0f} pairs/s)"
    )
    print(f"pairs/s vs that ceiling:            {single / (floor / 2):8.2f}")
    print(f"16 threads / 1 thread:              {threaded / single:8.2f}")
    print(
        f"hook per engine step p50:           {hook_p50:8.3f} ms  (neutral hooks {base_p50:.4f} ms; goal <= {HOOK_P50_GOAL_MS} ms)"
    )
    print(f"hook per engine step p95:           {hook_p95:8.3f} ms")
    print(f"hook overhead p50 vs neutral:       {hook_p50 - base_p50:8.3f} ms")
    print(f"ledger verifies: {ok.ok} ({ok.count} entries)")


if __name__ == "__main__":
    main()
