"""What every parser yields: sections of text with where they came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from engine.knowledge.guards import IngestLimits


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path on one page (chunks never cross sections)."""

    text: str
    page: int | None = None
    # Headings from the top of the document down to this section ("Intro", "Scope").
    path: tuple[str, ...] = ()

    @property
    def section(self) -> str | None:
        """The heading path as one string (``Intro › Scope``), or None."""
        return " › ".join(self.path) or None


class Parser(Protocol):
    """One file format: yields sections in document order, streaming where it can."""

    def __call__(self, file: BinaryIO, limits: IngestLimits) -> Iterator[Section]: ...
