"""Auth benchmark: what authenticating a request costs Enclave's HTTP API.

Run ``.venv/bin/python bench/auth.py`` (``--seconds N`` per endpoint, default 10; ``--quick``:
3 s). Nothing is asserted; it prints a table and ratios.

It initialises a temporary home (fast KDF; rate limits raised so they never answer 429), starts
the real server (``python -m appliance run``), creates the first admin, signs in (JWT) and
creates an API key (scope ``chat``). Then 50 concurrent clients, each on its own keep-alive
connection, load each endpoint for a fixed time after a 1 s warm-up, measuring requests/s and
p50/p95/p99 latency of: ``GET /healthz`` without credentials (the baseline), and
``GET /api/v1/auth/me`` with the API key and with the access JWT. auth/healthz ratios are
the cost of authentication (token check, session/user lookups, per-credential rate buckets).

Latency is closed-loop and taken at the client, which shares the CPUs with the server: with
50 clients it is mostly queueing (p50 ~ 50 / req/s), so compare rows rather than reading one
as the latency of a single request on an idle server. The load generator is ``wrk`` (Debian's
package, one thread, a Lua script reporting p50/p95/p99) when it is installed — written in C, it
leaves the server most of a core — else the asyncio client below (``--python`` forces it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CLIENTS = 50
WARMUP_S = 1.0
SEED_P95_MS = 200.0  # the seed's goal: every non-LLM endpoint p95 < 200 ms
OUR_P95_MS = 50.0  # ours: < 50 ms on 2 cores
PYTHON = sys.executable
# The password policy refuses a password that contains the username.
ADMIN = {"username": "bench", "password": "a long load-test password 42"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    fast = {"KDF_MEMORY_KIB": "8192", "KDF_TIME_COST": "1", "KDF_PARALLELISM": "1"}
    limits = {"RATE_LIMIT_API_PER_MINUTE": "10000000", "RATE_LIMIT_AUTH_PER_MINUTE": "10000000"}
    return env | {f"ENCLAVE_{k}": v for k, v in (fast | limits).items()}


def start_server(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Init a home, start ``appliance run`` on a free port, wait until /readyz says ready."""
    home, passfile = work / "home", work / "passphrase"
    passfile.write_text("a long bench passphrase for the vault\n")
    passfile.chmod(0o600)
    common = ["--home", str(home), "--passphrase-file", str(passfile)]
    subprocess.run(
        [PYTHON, "-m", "appliance", "init", *common], env=env, check=True, capture_output=True
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    proc = subprocess.Popen(
        [PYTHON, "-m", "appliance", "run", *common, "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"server not ready within 60 s: {log.read_text()[-2000:]}")


def wait_idle(pid: int, timeout_s: float = 60.0) -> float:
    """Wait until the server's start-up work (background jobs, lazy imports) is done: its CPU
    use over 0.5 s falls under 5 %. Returns the seconds waited."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        before = cpu_s()
        time.sleep(0.5)
        if cpu_s() - before < 0.025:
            break
    return time.monotonic() - began


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def credentials(url: str) -> tuple[str, str]:
    """First admin, sign in, create an API key: returns (JWT, API key token)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        checked(client.post("/api/v1/auth/first-admin", json=ADMIN))
        jwt = checked(client.post("/api/v1/auth/login", json=ADMIN)).json()["access_token"]
        key = client.post(
            "/api/v1/api-keys",
            json={"name": "bench", "scopes": ["chat"]},
            headers={"Authorization": f"Bearer {jwt}"},
        )
        return jwt, checked(key).json()["token"]


@dataclass(frozen=True)
class Result:
    rps: float
    p50: float  # ms
    p95: float
    p99: float
    errors: int


WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %.3f %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def load_wrk(url: str, path: str, headers: dict[str, str], seconds: float, work: Path) -> Result:
    """``wrk`` with CLIENTS connections on one thread for ``seconds``."""
    script = work / "report.lua"
    script.write_text(WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url + path], check=True, capture_output=True, text=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK "))
    requests, duration_us, p50, p95, p99, errors = line.split()[1:]
    return Result(
        int(requests) / (int(duration_us) / 1e6), float(p50), float(p95), float(p99), int(errors)
    )


def percentile(sorted_ms: list[float], p: float) -> float:
    n = len(sorted_ms)
    return sorted_ms[min(n - 1, int(p / 100 * n))] if n else float("nan")


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams (GET, Content-Length bodies).

    The load generator shares the CPUs with the server, so it must be cheap: one shared
    ``httpx.AsyncClient`` with 50 connections burns ~9 ms CPU a request in httpcore's pool
    and tops out near 100 req/s with the server ~10% busy (``--httpx`` shows it).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection") == "close":
            await self.close()
        return int(head[0].split()[1])

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def load(
    url: str, path: str, headers: dict[str, str], seconds: float, use_httpx: bool
) -> Result:
    """CLIENTS asyncio workers hit ``path`` for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    target = httpx.URL(url)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    shared = httpx.AsyncClient(base_url=url, limits=limits, timeout=30) if use_httpx else None

    async def worker() -> None:
        nonlocal errors
        raw = RawClient(target.host, target.port or 80)
        while time.perf_counter() < end:
            start = time.perf_counter()
            try:
                if shared is not None:
                    ok = (await shared.get(path, headers=headers)).status_code == 200
                else:
                    ok = await raw.get(path, headers) == 200
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                ok = False
                await raw.close()
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1
        await raw.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - began
    if shared is not None:
        await shared.aclose()
    latencies.sort()
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    return Result(len(latencies) / elapsed, p50, p95, p99, errors)


async def run_all(
    url: str, jwt: str, api_key: str, seconds: float, generator: str, work: Path
) -> None:
    cases = {
        "GET /healthz (no auth)": ("/healthz", {}),
        "GET /auth/me (API key)": ("/api/v1/auth/me", {"Authorization": f"Bearer {api_key}"}),
        "GET /auth/me (JWT)": ("/api/v1/auth/me", {"Authorization": f"Bearer {jwt}"}),
    }
    results: dict[str, Result] = {}
    for label, (path, headers) in cases.items():
        if generator == "wrk":
            load_wrk(url, path, headers, WARMUP_S, work)
            results[label] = load_wrk(url, path, headers, seconds, work)
        else:
            await load(url, path, headers, WARMUP_S, generator == "httpx")
            results[label] = await load(url, path, headers, seconds, generator == "httpx")

    how = {
        "wrk": "wrk, one thread, one keep-alive connection per client",
        "httpx": "one shared httpx.AsyncClient",
        "python": "asyncio, one keep-alive connection each",
    }[generator]
    print(
        f"{CLIENTS} concurrent clients, {seconds:g} s each after {WARMUP_S:g} s warm-up; "
        f"load from {how}; client and server on the same {os.cpu_count()} CPU(s)"
    )
    print(f"{'':<26}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for label, r in results.items():
        print(f"{label:<26}{r.rps:>9,.0f}{r.p50:>9.1f}{r.p95:>9.1f}{r.p99:>9.1f}{r.errors:>8}")

    base = results["GET /healthz (no auth)"]
    print("\nOverhead vs /healthz        p95 ratio  req/s ratio")
    for label in list(cases)[1:]:
        r = results[label]
        print(f"{label:<26}{r.p95 / base.p95:>11.2f}{r.rps / base.rps:>13.2f}")

    print(f"\nGoal: p95 < {SEED_P95_MS:.0f} ms (seed), < {OUR_P95_MS:.0f} ms on 2 cores (ours)")
    for label, r in results.items():
        seed = "meets" if r.p95 < SEED_P95_MS else "MISSES"
        ours = "meets" if r.p95 < OUR_P95_MS else "MISSES"
        print(f"{label:<26}p95 {r.p95:>7.1f} ms: {seed} seed goal, {ours} ours")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration per endpoint")
    parser.add_argument("--quick", action="store_true", help="3 s per endpoint, a smoke run")
    parser.add_argument("--httpx", action="store_true", help="load with a shared httpx client")
    parser.add_argument("--python", action="store_true", help="load with asyncio, not wrk")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    if args.httpx:
        generator = "httpx"
    elif args.python or shutil.which("wrk") is None:
        generator = "python"
    else:
        generator = "wrk"
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-auth-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, url = start_server(work, bench_env())
        jwt, api_key = credentials(url)
        print(f"server idle after {wait_idle(proc.pid):.1f} s of start-up work")
        asyncio.run(run_all(url, jwt, api_key, seconds, generator, work))
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
