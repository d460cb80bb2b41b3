"""Crash-safety soak: the kill -9 fault test of the suite, with many more kills.

CI runs 60 kills (tests/appliance/test_killwriter.py); this runs the same checks with
``--kills N`` (default 500) served kills on one growing SQLCipher file and reports how many
kills were verified per second. Every kill is followed by ``PRAGMA integrity_check`` and a check
that every committed row is present and intact; any failure exits non-zero.

    .venv/bin/python bench/killwriter.py --kills 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=500, help="served kills (plus 4 fresh ones)")
    args = parser.parse_args()
    env = dict(os.environ, ENCLAVE_KILL_LOOPS=str(args.kills))
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "tests/appliance/test_killwriter.py",
        ],
        cwd=REPO,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - started
    total = args.kills + 4
    verdict = "all verified" if result.returncode == 0 else "FAILED"
    print(
        f"kill -9 soak: {total} kills in {elapsed:.1f} s ({total / elapsed:.1f} kills/s): {verdict}"
    )
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
