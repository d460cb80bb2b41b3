"""Structure-aware chunking: token windows with overlap that never cross a section (a page or
a heading), each carrying its page, section path and character span in the document's text.

A "token" is a run of non-space characters by default; pass ``tokens`` to count with a model's
own tokenizer instead. Spans are offsets into :func:`document_text` — the sections joined by a
blank line — so a citation points at the exact passage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from engine.knowledge.parsers.base import Section

SEPARATOR = "\n\n"
_WORD = re.compile(r"\S+")

TokenSpans = Callable[[str], list[tuple[int, int]]]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of whitespace-separated tokens."""
    return [m.span() for m in _WORD.finditer(text)]


@dataclass(frozen=True)
class ChunkingOptions:
    """Window size and overlap in tokens."""

    max_tokens: int = 180
    overlap: int = 30

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or not 0 <= self.overlap < self.max_tokens // 2:
            raise ValueError("chunk size must be ≥ 8 tokens and overlap < half of it")


@dataclass(frozen=True)
class Chunk:
    """A passage to index: text plus where it sits in the document."""

    ordinal: int
    text: str
    start: int
    end: int
    page: int | None
    section: str | None


def document_text(sections: Iterable[Section]) -> str:
    """The document's text as the spans count it."""
    return SEPARATOR.join(s.text for s in sections)


def chunk_sections(
    sections: Iterable[Section],
    options: ChunkingOptions | None = None,
    tokens: TokenSpans = word_spans,
) -> Iterator[Chunk]:
    """Chunks of every section in order; streams (one section in memory at a time)."""
    opts = options or ChunkingOptions()
    step = opts.max_tokens - opts.overlap
    offset = 0
    ordinal = 0
    for index, section in enumerate(sections):
        if index:
            offset += len(SEPARATOR)
        spans = tokens(section.text)
        start_token = 0
        while start_token < len(spans):
            window = spans[start_token : start_token + opts.max_tokens]
            begin, end = window[0][0], window[-1][1]
            yield Chunk(
                ordinal,
                section.text[begin:end],
                offset + begin,
                offset + end,
                section.page,
                section.section,
            )
            ordinal += 1
            if start_token + opts.max_tokens >= len(spans):
                break
            start_token += step
        offset += len(section.text)
