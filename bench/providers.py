"""Provider benchmark: what the provider layer costs on top of the raw libraries.

Run ``.venv/bin/python -m bench.providers`` from the repository root (``--quick`` for fewer
samples; ``-m`` keeps ``bench/engine.py`` from shadowing the ``engine`` package). Nothing is
asserted; it prints the figures and the ratios.

(1) Generation speed: tokens/s of :class:`LocalProvider` (llama.cpp in a worker process,
    replies over a pipe) against raw ``llama_cpp.Llama`` in this process, same model (the
    bundled SmolLM2), same prompt, temperature 0, same threads; best of N runs each,
    alternated. Goal: ratio >= 0.98.

(2) Remote overhead: :class:`OpenAICompatibleProvider` against a raw ``httpx`` streaming call
    (lines read, each ``data:`` chunk JSON-parsed), both to the same fast local upstream: a
    uvicorn + Starlette server in a child process that answers every request at once with
    canned SSE chunks (32 content chunks, a usage chunk, ``[DONE]``). Time to first token and
    total time per request, p50/p99, with 1 and with 50 concurrent streams; the provider's
    added time is its p50 minus the raw p50. Goal: <= 1 ms added at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from engine.providers import (
    ChatMessage,
    ChatRequest,
    EndpointConfig,
    LocalProvider,
    OpenAICompatibleProvider,
    TextDelta,
)
from models import load_catalog

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
GEN_TOKENS = 128
CHUNKS = 32


# --- (1) local generation --------------------------------------------------------------------


async def generation_rates(model: Path, runs: int) -> tuple[list[float], list[float]]:
    """Tokens/s of raw ``Llama`` and of ``LocalProvider``, runs alternated so that a change
    in the machine's load hits both alike. Both models stay loaded throughout."""
    from llama_cpp import Llama

    llm = Llama(str(model), n_ctx=2048, n_threads=2, verbose=False)
    provider = LocalProvider(model, context_length=2048, n_threads=2)
    request = ChatRequest((ChatMessage("user", PROMPT),), GEN_TOKENS, temperature=0.0)
    await provider.count_tokens("warm up")  # loads the model outside the timing
    raw_rates: list[float] = []
    provider_rates: list[float] = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            tokens = 0
            for chunk in llm.create_chat_completion(
                [{"role": "user", "content": PROMPT}],
                max_tokens=GEN_TOKENS,
                temperature=0.0,
                stream=True,
            ):
                if chunk["choices"][0]["delta"].get("content"):
                    tokens += 1
            raw_rates.append(tokens / (time.perf_counter() - start))

            start = time.perf_counter()
            tokens = 0
            async for event in provider.stream(request):
                if isinstance(event, TextDelta):
                    tokens += 1
            provider_rates.append(tokens / (time.perf_counter() - start))
    finally:
        await provider.close()
    return raw_rates, provider_rates


# --- (2) remote overhead ---------------------------------------------------------------------


def serve(port: int) -> None:
    """The fast upstream (run in a child process)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        body = {"id": "c", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n".encode()

    canned = b"".join(
        [chunk({"role": "assistant"})]
        + [chunk({"content": f" word{i}"}) for i in range(CHUNKS)]
        + [chunk({}, "stop")]
        + [b'data: {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 32}}\n\n']
        + [b"data: [DONE]\n\n"]
    )

    async def completions(request: Request) -> Response:
        await request.body()
        return Response(canned, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


async def raw_call(client: httpx.AsyncClient, body: dict[str, object]) -> tuple[float, float]:
    start = time.perf_counter()
    first = 0.0
    async with client.stream("POST", "chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            choices = chunk.get("choices") or []
            if not first and choices and choices[0]["delta"].get("content"):
                first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def provider_call(provider: OpenAICompatibleProvider) -> tuple[float, float]:
    request = ChatRequest((ChatMessage("user", "Hi"),), max_tokens=64)
    start = time.perf_counter()
    first = 0.0
    async for event in provider.stream(request):
        if not first and isinstance(event, TextDelta):
            first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def measure(
    call: Callable[[], Awaitable[tuple[float, float]]], concurrency: int, total: int
) -> tuple[list[float], list[float]]:
    ttft: list[float] = []
    whole: list[float] = []
    for _ in range(total // concurrency):
        results = await asyncio.gather(*(call() for _ in range(concurrency)))
        ttft.extend(r[0] for r in results)
        whole.extend(r[1] for r in results)
    return ttft, whole


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def remote_overhead(port: int, samples: int) -> None:
    base = f"http://127.0.0.1:{port}/v1"
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    raw_client = httpx.AsyncClient(base_url=base + "/", limits=limits, trust_env=False)
    provider = OpenAICompatibleProvider(EndpointConfig(base_url=base, model="m", name="fast"))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 64,
        "stream": True,
    }
    try:
        for concurrency in (1, 50):
            # Warm both pools, then alternate raw and provider batches.
            await measure(lambda: raw_call(raw_client, body), concurrency, concurrency)
            await measure(lambda: provider_call(provider), concurrency, concurrency)
            raw_t: list[float] = []
            raw_w: list[float] = []
            prov_t: list[float] = []
            prov_w: list[float] = []
            rounds = 4
            for _ in range(rounds):
                per_round = max(concurrency, samples // rounds)
                t, w = await measure(lambda: raw_call(raw_client, body), concurrency, per_round)
                raw_t += t
                raw_w += w
                t, w = await measure(lambda: provider_call(provider), concurrency, per_round)
                prov_t += t
                prov_w += w
            print(f"\n  {concurrency} concurrent stream(s), {len(raw_t)} requests each:")
            print(
                f"    {'':10} {'TTFT p50':>9} {'TTFT p99':>9} {'total p50':>10} {'total p99':>10}"
            )
            for name, t, w in (("raw httpx", raw_t, raw_w), ("provider", prov_t, prov_w)):
                print(
                    f"    {name:10} {pct(t, 0.5):8.2f}ms {pct(t, 0.99):8.2f}ms "
                    f"{pct(w, 0.5):9.2f}ms {pct(w, 0.99):9.2f}ms"
                )
            print(
                f"    added by the provider at p50: TTFT {pct(prov_t, 0.5) - pct(raw_t, 0.5):+.2f} ms, "
                f"total {pct(prov_w, 0.5) - pct(raw_w, 0.5):+.2f} ms "
                f"(ratio total {statistics.median(prov_w) / statistics.median(raw_w):.2f})"
            )
    finally:
        await raw_client.aclose()
        await provider.aclose()


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the fast upstream did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and samples")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    runs, samples = (2, 100) if args.quick else (3, 400)
    model = load_catalog().default_entry().path()
    assert model is not None and model.is_file(), "the bundled model must be installed"

    print(f"(1) generation, {GEN_TOKENS} tokens at temperature 0, best of {runs} (alternated):")
    raw_rates, provider_rates = asyncio.run(generation_rates(model, runs))
    raw, local = max(raw_rates), max(provider_rates)
    print(f"    raw llama_cpp.Llama  {raw:7.1f} tok/s")
    print(f"    LocalProvider        {local:7.1f} tok/s")
    print(f"    ratio provider/raw   {local / raw:7.3f}  (goal >= 0.98)")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bench.providers", "--serve", str(port)])
    try:
        wait_for(port)
        print("\n(2) OpenAI-compatible provider vs raw httpx, same fast local upstream:")
        asyncio.run(remote_overhead(port, samples))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
