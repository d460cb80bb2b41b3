"""Writer for the kill -9 test: commits numbered rows and prints each number once committed.

Usage: ``killwriter_child.py DB_PATH HEX_KEY [--serve]``

Without ``--serve`` it writes until it is killed: it prints ``ready <pid>``, then loops; each
transaction (through :class:`Database`) inserts row ``seq`` with a random payload and its
SHA-256, and rewrites an older row's payload; once the commit has returned it prints ``seq``.
It continues from the highest committed ``seq`` + 1, so one file can take many kills.

With ``--serve`` it imports everything once, prints ``loaded`` and then, for each ``go`` line
on stdin, forks one writer (as above) and, when that writer has died, prints
``exit <exit code>``. Forking from a warm process saves the interpreter start (about a second)
per kill. The server never opens the database: the writers share nothing but the file.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from pathlib import Path

from sqlalchemy import text

from appliance.keys.secret import DataKey
from appliance.store.database import Database

DDL = (
    "CREATE TABLE IF NOT EXISTS killlog "
    "(seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, digest BLOB NOT NULL)"
)
INSERT = text("INSERT INTO killlog (seq, payload, digest) VALUES (:seq, :payload, :digest)")
UPDATE = text("UPDATE killlog SET payload = :payload, digest = :digest WHERE seq = :seq")
MAX_SECONDS = 30  # a writer nobody kills (parent gone) stops by itself


def payload(rng: random.Random) -> dict[str, bytes]:
    # Up to ~1.5 pages, so some rows spill into overflow pages.
    data = rng.randbytes(rng.randint(0, 6000))
    return {"payload": data, "digest": hashlib.sha256(data).digest()}


def say(line: str) -> None:
    # One write(2) per line: a kill can never leave half a line for the next writer to extend.
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def write_until_killed(path: Path, dek: DataKey) -> None:
    db = Database(path=path, dek=dek)
    with db.write() as session:
        session.execute(text(DDL))
        seq = (session.scalar(text("SELECT max(seq) FROM killlog")) or 0) + 1
    rng = random.Random()
    say(f"ready {os.getpid()}")
    end = time.monotonic() + MAX_SECONDS
    while time.monotonic() < end:
        with db.write() as session:
            session.execute(INSERT, {"seq": seq, **payload(rng)})
            if seq > 1:
                session.execute(UPDATE, {"seq": rng.randint(1, seq - 1), **payload(rng)})
        say(str(seq))  # only now is it committed
        seq += 1


def serve(path: Path, dek: DataKey) -> None:
    say("loaded")
    while sys.stdin.readline().strip() == "go":
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                write_until_killed(path, dek)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        say(f"exit {os.waitstatus_to_exitcode(status)}")


def main(argv: list[str]) -> None:
    path, dek = Path(argv[1]), DataKey(bytes.fromhex(argv[2]))
    if "--serve" in argv[3:]:
        serve(path, dek)
    else:
        write_until_killed(path, dek)


if __name__ == "__main__":
    main(sys.argv)
