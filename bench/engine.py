"""Engine benchmark: what the run loop costs on top of the model.

Run ``.venv/bin/python bench/engine.py`` (``--quick`` for fewer repetitions). Nothing is
asserted; it prints figures and ratios.

1. **Per-step overhead** with a zero-latency scripted model: turns of 4 steps (3 calculator
   calls, then the answer), timed end to end through ``Runner`` (budgeting, hooks, events,
   tool validation and execution) vs the same work done bare (the provider streams and the tool
   runs, nothing else). (loop − bare) / steps is the engine's own cost per step. Goal: ≤ 2 ms p50.
2. **End-to-end tokens/s** of a turn through the real server's SSE run API
   (``POST /api/v1/agents/{id}/runs``, the bundled SmolLM2) vs the raw local provider on the
   same prompt and settings, alternating, medians of the repetitions. Goal: ≥ 0.95.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

# This file is named like the package it measures, and Python puts a script's folder first on
# the import path: drop it so ``import engine`` finds the real package, then run the benchmark.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

if __name__ == "__main__":
    runpy.run_path(str(HERE / "engine_turns.py"), run_name="__main__")
