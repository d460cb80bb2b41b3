"""Helpers for the packaging tests that run `make`."""

from __future__ import annotations

import os
import pwd


def build_env() -> dict[str, str]:
    """The environment for `make bundle`/`make wheelhouse`: the real HOME, so pip finds its
    wheel cache (the autouse fixture points HOME at a temporary folder) and llama-cpp-python
    is not rebuilt from source; no ENCLAVE_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
    return env
