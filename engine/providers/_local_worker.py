"""The llama.cpp worker process behind :class:`engine.providers.local.LocalProvider`.

It runs in its own process (spawned, never forked) so that a crash or hang inside llama.cpp
kills only this process, never the appliance. It loads the model once, then serves messages
from the pipe one at a time:

* ``{"op": "chat", "id", "messages", "max_tokens", "temperature", "stop", "json_schema"}``
  (``json_schema`` None or a schema the output is grammar-constrained to) → any number of
  ``{"id", "delta"}``, then ``{"id", "usage": {...}, "finish": reason}`` or
  ``{"id", "error": code, "message"}``;
* ``{"op": "count_prompt", "id", "messages"}`` and ``{"op": "tokenize", "id", "text"}`` →
  ``{"id", "tokens": n}``;
* ``{"op": "cancel", "id"}`` stops that generation between two tokens;
* ``{"op": "shutdown"}`` (or the pipe closing) ends the process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, cast

# Added to each message's content tokens when the GGUF has no chat template to render: the
# role markers and separators that a template adds cost a few tokens per message.
PER_MESSAGE_OVERHEAD = 8


class _Model:
    """The loaded model plus the GGUF's chat template, for exact prompt token counts."""

    def __init__(self, model_path: str, context_length: int, n_threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=model_path, n_ctx=context_length, n_threads=n_threads, verbose=False
        )
        self.formatter: Any = None
        template = self.llm.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp import llama_chat_format

            self.formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self.llm.token_eos()),
                bos_token=self._token_text(self.llm.token_bos()),
            )

    def _token_text(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> int:
        """Tokens of plain text (no BOS), as the model's tokenizer splits it."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the prompt the chat template renders for ``messages``.

        Exact when the GGUF carries a chat template (the same one ``create_chat_completion``
        applies); otherwise the message contents plus ``PER_MESSAGE_OVERHEAD`` per message.
        """
        if self.formatter is not None:
            prompt = self.formatter(messages=messages).prompt
            # add_bos: llama.cpp prepends BOS when it evaluates the rendered prompt.
            return len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        return sum(self.tokens(m["content"]) + PER_MESSAGE_OVERHEAD for m in messages)


def _chat(model: _Model, conn: Connection, msg: dict[str, Any], backlog: deque[Any]) -> None:
    """Stream one chat completion, checking the pipe for a cancel between tokens."""
    request_id = msg["id"]
    messages = msg["messages"]
    prompt_tokens = model.prompt_tokens(messages)
    parts: list[str] = []
    finish = "stop"
    # With stream=True the result is an iterator of chunk dicts; llama_cpp's annotation is a
    # union of every response shape.
    chunks = cast(
        "Iterator[dict[str, Any]]",
        model.llm.create_chat_completion(
            messages=messages,
            max_tokens=msg["max_tokens"],
            temperature=msg["temperature"],
            stop=list(msg["stop"]) or None,
            response_format=(
                {"type": "json_object", "schema": msg["json_schema"]}
                if msg.get("json_schema") is not None
                else None
            ),
            stream=True,
        ),
    )
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = choice["delta"].get("content")
            if text:
                parts.append(text)
                conn.send({"id": request_id, "delta": text})
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            # Non-blocking check: a cancel stops us; anything else waits its turn.
            while conn.poll(0):
                incoming = conn.recv()
                if incoming.get("op") == "cancel" and incoming.get("id") == request_id:
                    finish = "cancelled"
                    break
                if incoming.get("op") != "cancel":
                    backlog.append(incoming)
            if finish == "cancelled":
                break
    finally:
        # Closing the generator releases llama.cpp's sampling state promptly.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    completion = model.tokens("".join(parts)) if parts else 0
    conn.send(
        {
            "id": request_id,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion},
            "finish": finish if finish in ("stop", "length", "cancelled") else "stop",
        }
    )


def _serve(model: _Model, conn: Connection, msg: dict[str, Any], backlog: deque[Any]) -> None:
    """Answer one request message; a failure becomes an error message, not a dead worker."""
    op = msg.get("op")
    request_id = msg.get("id")
    try:
        if op == "chat":
            _chat(model, conn, msg, backlog)
        elif op == "tokenize":
            conn.send({"id": request_id, "tokens": model.tokens(msg["text"])})
        elif op == "count_prompt":
            conn.send({"id": request_id, "tokens": model.prompt_tokens(msg["messages"])})
        elif op != "cancel":
            # A cancel arriving after its request finished is stale and needs no answer.
            conn.send({"id": request_id, "error": "bad_op", "message": f"Unknown op {op!r}."})
    except (BrokenPipeError, EOFError, ConnectionResetError):
        raise
    except Exception as exc:
        # Report the failure to the waiting request; the model stays loaded for the next one.
        conn.send({"id": request_id, "error": "generation_failed", "message": str(exc)})


def worker_main(conn: Connection, model_path: str, context_length: int, n_threads: int) -> None:
    """Process entry point: load the model, say ready, then serve requests until told to stop."""
    try:
        model = _Model(model_path, context_length, n_threads)
    except Exception as exc:
        conn.send({"ready": False, "error": "load_failed", "message": str(exc)})
        return
    conn.send({"ready": True, "pid": os.getpid()})
    backlog: deque[Any] = deque()
    while True:
        try:
            msg = backlog.popleft() if backlog else conn.recv()
        except EOFError:
            return
        if msg.get("op") == "shutdown":
            return
        try:
            _serve(model, conn, msg, backlog)
        except (BrokenPipeError, EOFError, ConnectionResetError):
            # The provider went away: nothing is left to serve.
            return
