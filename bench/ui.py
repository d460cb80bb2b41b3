"""UI benchmark: how fast the chat page paints and becomes usable, and what the browser adds to
the time until the first streamed token.

Run ``.venv/bin/python bench/ui.py`` (``--runs N``, default 5). Nothing is asserted; it prints
medians and a ratio. A real `enclave run` serves a seeded home; real headless Chromium loads the
page.

1. **Chat page**: first contentful paint, and time to interactive (navigation start until the
   Send button is enabled: the page has rendered over NiceGUI's websocket), medians.
2. **Send → first token**: in the browser (click Send until the first token shows in the live
   answer) vs the same run through the SSE API (request until the first ``token`` event), with
   the bundled SmolLM2, alternating; ratio of the medians (goal: close to 1).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

# This file is named like the ``ui`` package and Python puts a script's folder first on the
# import path: drop it, put the repository root there instead, then run the benchmark.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

if __name__ == "__main__":
    runpy.run_path(str(HERE / "ui_chat.py"), run_name="__main__")
