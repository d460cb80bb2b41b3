"""kill -9 fault injection: a writer is SIGKILLed at random moments; nothing it committed is lost.

As in SQLite's own crash tests, a separate process writes through :class:`Database` and is
killed mid-stream, over and over, on one growing file. After every kill the file must pass
``PRAGMA integrity_check`` and hold every sequence number the writer reported as committed
(plus at most the one it committed but had no time to print), each row intact.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import text

from appliance.keys.secret import DataKey
from appliance.store.database import Database

CHILD = Path(__file__).with_name("killwriter_child.py")
REPO = Path(__file__).resolve().parents[2]
DIRECT_KILLS = 4  # fresh interpreters, as a real crash would leave them
# Forked from a warm process (see killwriter_child.py): fast. bench/killwriter.py raises it.
SERVED_KILLS = int(os.environ.get("ENCLAVE_KILL_LOOPS", "56"))


class Checker:
    """Verifies the file after each kill and tracks the highest committed sequence number."""

    def __init__(self, path: Path, dek: DataKey) -> None:
        self.path, self.dek = path, dek
        self.committed = 0
        self.kills = 0

    def check(self, lines: list[str], seed: int) -> None:
        printed = [int(line) for line in lines if line.isdigit()]
        where = f"kill {self.kills} (seed {seed}, printed {printed[:1]}..{printed[-1:]})"
        db = Database(path=self.path, dek=self.dek)
        try:
            assert db.integrity_check() == ["ok"], where
            with db.read() as session:
                total, top = session.execute(text("SELECT count(*), max(seq) FROM killlog")).one()
                rows = session.execute(text("SELECT seq, payload, digest FROM killlog")).all()
        finally:
            db.dispose()
        top = top or 0
        assert total == top, f"{where}: a committed row is missing"
        # The writer starts at committed + 1 and prints in order, each only after its commit.
        expected = list(range(self.committed + 1, self.committed + 1 + len(printed)))
        assert printed == expected, where
        last_printed = printed[-1] if printed else self.committed
        assert last_printed <= top <= last_printed + 1, where
        for seq, data, digest in rows:
            assert hashlib.sha256(data).digest() == digest, f"{where}: row {seq} is torn"
        self.committed = top
        self.kills += 1


def random_pause(rng: random.Random) -> None:
    time.sleep(rng.uniform(0.02, 0.2))


def read_until_exit(stream: IO[str]) -> tuple[list[str], int]:
    lines: list[str] = []
    while True:
        line = stream.readline()
        assert line, "the writer server died"
        line = line.strip()
        if line.startswith("exit "):
            return lines, int(line.split()[1])
        lines.append(line)


@pytest.mark.slow
def test_sigkilled_writer_never_loses_a_commit(tmp_path: Path) -> None:
    path, dek = tmp_path / "kill.db", DataKey.generate()
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    checker = Checker(path, dek)
    args = [sys.executable, str(CHILD), str(path), dek.raw.hex()]
    errors = (tmp_path / "child-stderr.txt").open("w+")

    def stderr_text() -> str:
        errors.flush()
        return (tmp_path / "child-stderr.txt").read_text()[-4000:]

    for _ in range(DIRECT_KILLS):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready "), stderr_text()
        random_pause(rng)
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
        proc.stdout.close()
        assert proc.wait(timeout=30) == -signal.SIGKILL, stderr_text()
        checker.check(out.splitlines(), seed)

    server = subprocess.Popen(
        [*args, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        cwd=REPO,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        assert server.stdout.readline().strip() == "loaded", stderr_text()
        for _ in range(SERVED_KILLS):
            server.stdin.write("go\n")
            server.stdin.flush()
            ready = server.stdout.readline().split()
            assert ready[:1] == ["ready"], stderr_text()
            random_pause(rng)
            os.kill(int(ready[1]), signal.SIGKILL)
            lines, code = read_until_exit(server.stdout)
            assert code == -signal.SIGKILL, stderr_text()
            checker.check(lines, seed)
        server.stdin.close()
        assert server.wait(timeout=30) == 0, stderr_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        errors.close()

    assert checker.kills == DIRECT_KILLS + SERVED_KILLS
    assert checker.committed > checker.kills  # the writers got real work done between kills
