"""Local GGUF models through llama.cpp, in a separate worker process.

llama.cpp runs in a child process started with the ``spawn`` context (see
:mod:`engine.providers._local_worker`), so a crash or a hang in native code costs one request,
never the appliance: a dead or silent worker is killed, the request fails with
:class:`~engine.errors.WorkerCrashed`, and a fresh worker is started lazily by the next request.

The event loop never blocks on the pipe: replies are awaited by polling it in short slices in
the default thread pool. Each provider serves one request at a time (an ``asyncio.Lock``); the
fair queue across users, with its bound and queue positions
(:class:`~engine.providers.queue.FairQueue`), sits in front of this lock.

``spawn`` re-imports the parent's main module in the child, so a script that starts a provider
needs the usual ``if __name__ == "__main__":`` guard (console entry points already have one).
llama.cpp itself is imported only in the worker, never in the appliance process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from engine.errors import (
    ContextOverflow,
    GenerationFailed,
    InvalidChatRequest,
    ProviderUnavailable,
    WorkerCrashed,
)
from engine.providers._local_worker import worker_main
from engine.providers.base import (
    Capabilities,
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    Usage,
    collect,
)

# How long one wait on the pipe lasts before cancel, deadline and liveness are checked again;
# it bounds how late a cancel is forwarded to the worker.
POLL_SLICE = 0.05
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "cancelled": "cancelled",
}


@dataclass
class _Worker:
    """A running worker process and our end of its pipe."""

    process: BaseProcess
    conn: Connection

    @property
    def pid(self) -> int | None:
        return self.process.pid


@dataclass
class _Turn:
    """One chat request in flight: its id and whether its cancel was forwarded."""

    request_id: str
    cancel: asyncio.Event | None
    cancel_sent: bool = False

    def should_send_cancel(self) -> bool:
        return self.cancel is not None and self.cancel.is_set() and not self.cancel_sent


class LocalProvider:
    """A :class:`~engine.providers.base.Provider` for one local GGUF model file."""

    def __init__(
        self,
        model_path: Path,
        context_length: int,
        n_threads: int = 2,
        start_timeout: float = 60.0,
        token_timeout: float = 30.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.context_length = context_length
        self.n_threads = n_threads
        self.start_timeout = start_timeout
        self.token_timeout = token_timeout
        self._worker: _Worker | None = None
        self._lock = asyncio.Lock()
        # The tokenizer (vocabulary only) for counting outside the worker.
        self._vocab: Any = None
        self._vocab_lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")

    # --- Provider --------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """A local chat model: streaming and grammar-constrained JSON output within its context
        window. Native tool calling is not offered: llama.cpp's handler is unreliable with small
        models, so the run loop uses its own JSON-schema tool protocol instead."""
        return Capabilities(context_length=self.context_length, json_schema=True)

    async def health(self) -> dict[str, Any]:
        """Whether the worker process is up, its pid, and the model file it serves."""
        worker = self._worker
        up = worker is not None and worker.process.is_alive()
        return {
            "provider": "local",
            "model": self.model_path.name,
            "up": up,
            "pid": worker.pid if up and worker is not None else None,
        }

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's own tokenizer.

        Counted here, not in the worker: a count must not wait behind a generation in
        progress (the run loop counts before it queues). Only the vocabulary is loaded (a few
        MB, no weights, no context), once, in a thread.
        """
        return await asyncio.to_thread(self._count_sync, text)

    def _count_sync(self, text: str) -> int:
        with self._vocab_lock:
            if self._vocab is None:
                import llama_cpp
                from llama_cpp._internals import LlamaModel

                params = llama_cpp.llama_model_default_params()
                params.vocab_only = True
                self._vocab = LlamaModel(
                    path_model=str(self.model_path), params=params, verbose=False
                )
            return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def complete(self, request: ChatRequest) -> tuple[str, Usage, str]:
        """Run :meth:`stream` to the end and return ``(text, usage, finish reason)``."""
        return await collect(self.stream(request))

    async def stream(
        self, request: ChatRequest, cancel: asyncio.Event | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Generate an answer: ``TextDelta``s, then ``Usage``, then ``Finish``.

        The context window is checked before anything is generated. Setting ``cancel``,
        cancelling the consuming task or closing the generator stops the worker between two
        tokens; a stream stopped by ``cancel`` still ends with ``Usage`` and
        ``Finish("cancelled")``.
        """
        if request.tools:
            raise InvalidChatRequest(
                "The local model does not call tools natively; use a JSON schema (json_schema) "
                "to constrain its output instead."
            )
        messages = [_as_template_message(m) for m in request.messages]
        async with self._lock:
            worker = await self._ensure_worker()
            prompt_tokens = await self._ask_tokens(
                worker, {"op": "count_prompt", "messages": messages}
            )
            if prompt_tokens + request.max_tokens > self.context_length:
                raise ContextOverflow(prompt_tokens, request.max_tokens, self.context_length)
            request_id = uuid.uuid4().hex
            self._send(
                worker,
                {
                    "op": "chat",
                    "id": request_id,
                    "messages": messages,
                    "max_tokens": request.max_tokens,
                    "temperature": request.temperature,
                    "stop": list(request.stop),
                    "json_schema": request.json_schema,
                },
            )
            turn = _Turn(request_id, cancel)
            done = False
            try:
                while True:
                    msg = await self._receive(worker, request_id, turn)
                    if "delta" in msg:
                        yield TextDelta(msg["delta"])
                    elif "error" in msg:
                        done = True
                        raise GenerationFailed(msg.get("message"), worker_code=msg["error"])
                    else:
                        done = True
                        usage = msg["usage"]
                        yield Usage(usage["prompt_tokens"], usage["completion_tokens"])
                        yield Finish(FINISH_REASONS.get(msg["finish"], "stop"))
                        return
            finally:
                # Abandoned mid-stream (task cancelled, generator closed): stop the worker.
                # Its last message for this id is skipped by the next request's receive.
                if not done and self._worker is worker and not turn.cancel_sent:
                    self._try_send(worker, {"op": "cancel", "id": request_id})

    async def close(self) -> None:
        """Stop the worker process (politely, then by force)."""
        async with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                await asyncio.get_running_loop().run_in_executor(None, _stop, worker)

    def terminate(self) -> None:
        """Stop the worker from synchronous code (sealing, interpreter shutdown); a request in
        flight fails with ``worker_crashed``."""
        worker, self._worker = self._worker, None
        if worker is not None:
            _stop(worker)

    # --- worker management -----------------------------------------------------------------

    async def _ensure_worker(self) -> _Worker:
        """The live worker, starting one (and waiting for its model to load) if needed."""
        if self._worker is not None and self._worker.process.is_alive():
            return self._worker
        if self._worker is not None:
            self._discard()
        if not self.model_path.is_file():
            raise ProviderUnavailable(
                f"Model file {self.model_path} does not exist.", model=self.model_path.name
            )
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, str(self.model_path), self.context_length, self.n_threads),
            name=f"enclave-llama-{self.model_path.stem}",
            daemon=True,
        )
        process.start()
        # The child holds its own copy; ours must close so EOF is seen when the child dies.
        child.close()
        worker = _Worker(process, parent)
        self._worker = worker
        deadline = time.monotonic() + self.start_timeout
        while True:
            if await self._poll(worker):
                try:
                    ready = worker.conn.recv()
                except (EOFError, OSError) as exc:
                    self._discard()
                    raise ProviderUnavailable("The model process exited while loading.") from exc
                if ready.get("ready"):
                    return worker
                self._discard()
                raise ProviderUnavailable(
                    f"The model could not be loaded: {ready.get('message')}",
                    model=self.model_path.name,
                )
            if not process.is_alive() or time.monotonic() > deadline:
                self._discard()
                raise ProviderUnavailable(
                    f"The model process did not start within {self.start_timeout:g} s.",
                    model=self.model_path.name,
                )

    def _discard(self) -> None:
        """Kill the current worker (dead, hung or misbehaving); the next request starts anew."""
        worker, self._worker = self._worker, None
        if worker is not None:
            _kill(worker)

    def _crashed(self, reason: str) -> WorkerCrashed:
        self._discard()
        return WorkerCrashed(
            f"The model process {reason}; it will be restarted for the next request.",
            model=self.model_path.name,
        )

    def _send(self, worker: _Worker, msg: dict[str, Any]) -> None:
        try:
            worker.conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise self._crashed("stopped accepting requests") from exc

    def _try_send(self, worker: _Worker, msg: dict[str, Any]) -> None:
        """Best-effort send for cleanup paths; a broken pipe means the worker is gone."""
        try:
            worker.conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self._discard()

    async def _poll(self, worker: _Worker) -> bool:
        """Wait up to one slice for a message, in a thread so the loop stays free."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, worker.conn.poll, POLL_SLICE)
        except (OSError, EOFError):
            # A closed pipe reads as "ready"; the recv that follows reports the crash.
            return True

    async def _receive(
        self, worker: _Worker, request_id: str, turn: _Turn | None = None
    ) -> dict[str, Any]:
        """The next message for ``request_id``, skipping leftovers of abandoned requests.

        Forwards ``turn.cancel`` to the worker as soon as it is set; raises ``WorkerCrashed``
        when the worker dies or says nothing for ``token_timeout`` seconds.
        """
        deadline = time.monotonic() + self.token_timeout
        while True:
            if turn is not None and turn.should_send_cancel():
                self._send(worker, {"op": "cancel", "id": request_id})
                turn.cancel_sent = True
            if await self._poll(worker):
                try:
                    msg: dict[str, Any] = worker.conn.recv()
                except (EOFError, OSError) as exc:
                    raise self._crashed("exited") from exc
                if msg.get("id") == request_id:
                    return msg
                # A leftover of an abandoned request still proves the worker is alive.
                deadline = time.monotonic() + self.token_timeout
                continue
            if not worker.process.is_alive():
                raise self._crashed(f"exited (code {worker.process.exitcode})")
            if time.monotonic() > deadline:
                raise self._crashed(f"sent nothing for {self.token_timeout:g} s")

    async def _ask_tokens(self, worker: _Worker, msg: dict[str, Any]) -> int:
        """Send a counting request and return the worker's token count."""
        request_id = uuid.uuid4().hex
        self._send(worker, {**msg, "id": request_id})
        reply = await self._receive(worker, request_id)
        if "error" in reply:
            raise GenerationFailed(reply.get("message"), worker_code=reply["error"])
        return int(reply["tokens"])


def _as_template_message(message: ChatMessage) -> dict[str, str]:
    """A message as chat templates know it: small models' templates have no ``tool`` role and
    no tool-call fields, so a tool result reads as a user turn that says what it is."""
    if message.role == "tool":
        return {
            "role": "user",
            "content": f"Tool result ({message.tool_call_id}): {message.content}",
        }
    return {"role": message.role, "content": message.content}


def _kill(worker: _Worker) -> None:
    """Kill a worker outright and reap it (it may be hung inside native code)."""
    worker.process.kill()
    worker.process.join(timeout=5)
    worker.conn.close()


def _stop(worker: _Worker) -> None:
    """Ask a worker to exit, and kill it if it does not within a few seconds."""
    with contextlib.suppress(OSError):
        worker.conn.send({"op": "shutdown"})
    worker.process.join(timeout=3)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=5)
    worker.conn.close()
