"""Child process for test_kb_resume: starts ingesting a document as alice and reports once the
first batch of chunks is committed, then waits to be killed (SIGKILL) mid-job.

Usage: python -m tests.appliance.knowledge.kill_ingest_child HOME
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from appliance import Appliance
from appliance.knowledge.runtime import build_runtime
from tests.conftest import PASSPHRASE, make_settings

LOG = "\n\n".join(
    f"Paragraph {n}: the inspection of turbine blade {n} found wear level {n % 7}."
    for n in range(120)
).encode()


def main(home: Path) -> None:
    appliance = Appliance(make_settings(home))
    appliance.unseal(PASSPHRASE)
    runtime = build_runtime(appliance, start_worker=False)
    runtime.worker.parse_batch = 3
    alice = appliance.services.users.find_user("alice")
    assert alice is not None
    kb = runtime.service.create_base(alice, "logs")
    _, job = runtime.service.add_document(alice, kb.id, "log.txt", [LOG])
    store = runtime.worker._store

    def store_then_hang(*args: Any, **kwargs: Any) -> int:
        count = store(*args, **kwargs)
        sys.stdout.write(f"committed {job.id}\n")
        sys.stdout.flush()
        time.sleep(120)  # killed here, mid-parse
        return count

    runtime.worker._store = store_then_hang  # type: ignore[method-assign]
    runtime.worker.run_once()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
