"""Bundle benchmark: size, cold start to ready, and idle memory of the PyInstaller bundle
against ``enclave run`` from the venv, in one run.

Run ``.venv/bin/python -m bench.bundle`` after ``make bundle``. Each server starts on its own
copy of one initialised home with an unseal key file (``ENCLAVE_UNSEAL_KEYFILE``), so "ready"
means what it means in production: unsealed, database open, migrations current. Measured:

* cold start (first and second start of the same home): from spawning the process to the first ``/readyz`` answering 200 (the model
  loads lazily, on the first chat, so it is not part of it);
* CPU to ready: the server's user + system CPU time at that moment (on an idle machine the
  start takes about this long; on a loaded one, longer);
* idle RSS: the resident memory of the server's process tree 3 s after it became ready.

Goals: cold start < 3 s, idle RSS < 250 MB. Nothing is asserted; the machine's load shows in
the ratios (bundle/venv) more than in the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_EXE = ROOT / "dist" / "enclave" / "enclave"
VENV_EXE = Path(sys.executable).parent / "enclave"
PASSPHRASE = "correct horse battery staple"
MB = 1 << 20


def folder_mb(path: Path) -> float:
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / MB


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (what a start costs without the load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (the model worker, if one started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_home(base: Path) -> tuple[Path, Path]:
    """An initialised home and its unseal key file (made with the venv's `enclave init`)."""
    home, keyfile, secret = base / "home", base / "unseal.key", base / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    subprocess.run(
        [str(VENV_EXE), "init", "--home", str(home), "--passphrase-file", str(secret),
         "--keyfile-out", str(keyfile)],
        check=True, capture_output=True, env=fast_env(),
    )  # fmt: skip
    return home, keyfile


def fast_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(
        ENCLAVE_KDF_MEMORY_KIB="8192", ENCLAVE_KDF_TIME_COST="1", ENCLAVE_KDF_PARALLELISM="1"
    )
    env.update(extra)
    return env


def measure(exe: Path, home: Path, keyfile: Path) -> tuple[float, float, float]:
    """(seconds to ready, CPU seconds to ready, idle RSS in MB) of one ``exe run``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    env = fast_env(ENCLAVE_UNSEAL_KEYFILE=str(keyfile))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "run", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{exe} exited with {proc.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 120:
                raise SystemExit(f"{exe} was not ready within 120 s")
            time.sleep(0.02)
        ready = time.perf_counter() - started
        cpu = cpu_seconds(proc.pid)
        time.sleep(3)
        return ready, cpu, tree_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE_EXE)
    args = parser.parse_args()
    if not args.bundle.is_file():
        raise SystemExit(f"{args.bundle} is missing: run `make bundle` first")
    tarballs = sorted((args.bundle.parent.parent).glob("enclave-*-linux-x86_64.tar.gz"))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        base = Path(tmp)
        home, keyfile = prepare_home(base)
        results = {}
        for name, exe in (("venv", VENV_EXE), ("bundle", args.bundle)):
            copy = base / f"home-{name}"
            shutil.copytree(home, copy)
            # The first start reads the files from disk (unless cached); the second is what a
            # restarted service sees.
            first, _, _ = measure(exe, copy, keyfile)
            results[name] = (first, *measure(exe, copy, keyfile))
    print(f"load average at start: {load:.2f} (2 cores)")
    print(f"bundle folder: {folder_mb(args.bundle.parent):.0f} MB", end="")
    if tarballs:
        print(f", tarball {tarballs[-1].stat().st_size / MB:.0f} MB", end="")
    print()
    head = ("1st ready (s)", "2nd ready (s)", "CPU to ready (s)", "idle RSS (MB)")
    print(f"{'':12} " + " ".join(f"{h:>16}" for h in head))
    for name, (first, ready, cpu, rss) in results.items():
        print(f"{name:12} {first:16.2f} {ready:16.2f} {cpu:16.2f} {rss:16.0f}")
    (vf, vr, vc, vm), (bf, br, bc, bm) = results["venv"], results["bundle"]
    print(f"{'bundle/venv':12} {bf / vf:16.2f} {br / vr:16.2f} {bc / vc:16.2f} {bm / vm:16.2f}")
    print(
        f"goals: ready < 3 s: {'met' if br < 3 else 'NOT met'}; "
        f"idle RSS < 250 MB: {'met' if bm < 250 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
