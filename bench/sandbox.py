"""Sandbox benchmark: what isolation costs, per backend, against running bare.

Run ``.venv/bin/python bench/sandbox.py`` (``--runs N`` per measurement, default 20). Nothing is
asserted; it prints a table and ratios:

- start-up: median wall time of ``python -c pass`` (goal: ≤ 2× bare);
- CPU task: a ~100 ms pure-Python loop, whole-run wall time and the loop's own time measured
  inside (goal: ≤ 1.05× bare — isolation should not slow computation); also as the median of
  the per-round ratios (each round runs bare and every backend back to back);
- throughput: runs/s of ``python -c pass`` with 2 and 8 concurrent executions;
- the start-up of a run under ``network=allowlist`` (one allowed destination, not contacted):
  what the relay costs.

"Bare" is the same interpreter started the same way (``asyncio`` subprocess) with no sandbox.
The sandboxed runs use the default policy (cgroup, rlimits, seccomp, uid drop, private
namespaces) and a fresh workspace each, as the code tools do.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# This script is named like the package it measures, and Python puts its folder first on the
# path: drop that folder so that "sandbox" is the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sb = importlib.import_module("sandbox")

PYTHON = sys.executable
# A fixed amount of pure-Python work (~100 ms bare here), timed inside the process.
CPU_TASK = (
    "import time\n"
    "t = time.perf_counter()\n"
    "total = sum(i * i for i in range(1_200_000))\n"
    "print(time.perf_counter() - t, total)\n"
)
Runner = Callable[[list[str]], Awaitable[str]]


def bare_runner() -> Runner:
    async def run(argv: list[str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return out.decode()

    return run


def sandbox_runner(backend: str, root: Path, allowlist: bool = False) -> Runner:
    policy = sb.default_policy(root / "home", limits=sb.Limits(wall_seconds=60))
    if allowlist:
        # TEST-NET-3: never contacted (nothing connects); the relay is set up all the same.
        policy = dataclasses.replace(
            policy, network="allowlist", network_allowlist=("203.0.113.7:443",)
        )
    sandbox = sb.Sandbox(policy, backend, workspace_root=root / "ws")

    async def run(argv: list[str]) -> str:
        result = await sandbox.run(argv)
        if result.exit_code != 0:
            raise RuntimeError(f"{backend}: {result.stderr}")
        return result.stdout

    return run


async def interleaved(
    runners: dict[str, Runner], argv: list[str], runs: int
) -> dict[str, tuple[float, list[str]]]:
    """Median wall time and outputs per runner; the runners take turns on every round, so a
    change of load on this shared machine hits all of them alike."""
    for run in runners.values():
        await run(argv)  # warm the page cache
    walls: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, list[str]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            outputs[name].append(await run(argv))
            walls[name].append(time.perf_counter() - start)
    return {name: (statistics.median(walls[name]), outputs[name]) for name in runners}


async def throughput(run: Runner, concurrency: int, total: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await run([PYTHON, "-c", "pass"])

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - start)


async def main(runs: int) -> None:
    infos = [b for b in sb.available_backends() if b.usable]
    backends = [b.name for b in infos]
    print(f"python: {PYTHON}; runs per figure: {runs}; backends: {', '.join(backends)}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        runners: dict[str, Runner] = {"bare": bare_runner()}
        for name in backends:
            runners[name] = sandbox_runner(name, Path(tmp))
        start_up = await interleaved(runners, [PYTHON, "-c", "pass"], runs)
        relayed: dict[str, Runner] = {"bare": runners["bare"]}
        for info in infos:
            if info.allowlist:
                relayed[info.name] = sandbox_runner(info.name, Path(tmp), allowlist=True)
        net_start = await interleaved(relayed, [PYTHON, "-c", "pass"], runs)
        cpu = await interleaved(runners, [PYTHON, "-c", CPU_TASK], max(5, runs))
        rows: dict[str, dict[str, float]] = {}
        for name, run in runners.items():
            rows[name] = {
                "start": start_up[name][0],
                "cpu_wall": cpu[name][0],
                "cpu_inner": statistics.median(float(o.split()[0]) for o in cpu[name][1]),
                "rps2": await throughput(run, 2, runs * 2),
                "rps8": await throughput(run, 8, runs * 2),
            }
    base = rows["bare"]
    print(
        f"{'':12}{'start-up ms':>12}{'×bare':>7}{'cpu wall ms':>13}{'×bare':>7}"
        f"{'task ms':>9}{'×bare':>7}{'runs/s @2':>11}{'runs/s @8':>11}"
    )
    for name, row in rows.items():
        print(
            f"{name:12}{row['start'] * 1000:12.1f}{row['start'] / base['start']:7.2f}"
            f"{row['cpu_wall'] * 1000:13.1f}{row['cpu_wall'] / base['cpu_wall']:7.2f}"
            f"{row['cpu_inner'] * 1000:9.1f}{row['cpu_inner'] / base['cpu_inner']:7.2f}"
            f"{row['rps2']:11.1f}{row['rps8']:11.1f}"
        )
    print(
        "goals: start-up ≤ 2.00× bare; CPU task ≤ 1.05× bare ('task ms': the work timed "
        "inside the process; 'cpu wall ms': the whole run, start-up included)"
    )
    # Each round ran bare and every backend back to back: the median of the per-round ratios
    # cancels what drifts between rounds (another tenant's load, CPU frequency).
    inner = {name: [float(o.split()[0]) for o in outs] for name, (_, outs) in cpu.items()}
    for name in backends:
        paired = statistics.median(b / a for a, b in zip(inner["bare"], inner[name], strict=True))
        print(f"CPU task, paired per round (median of {name}/bare): {paired:.3f}×")
    net_base = net_start["bare"][0]
    for name, (wall, _) in net_start.items():
        if name != "bare":
            print(
                f"start-up with network=allowlist (relay): {name} {wall * 1000:.1f} ms, "
                f"{wall / net_base:.2f}× bare"
            )
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
