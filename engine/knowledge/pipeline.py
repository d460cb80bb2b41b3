"""From an uploaded file to chunks: size → sniff → archive guard → malware scan → parse → chunk.

Each step raises a typed :class:`~engine.knowledge.errors.IngestError`; nothing here knows
users, storage or HTTP. Parsing is lazy: :func:`extract` checks the file and returns a stream
of sections, so a 2,000-page PDF is read a page at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from engine.knowledge import sniff as sniffing
from engine.knowledge.errors import MalwareDetected, NoTextFound
from engine.knowledge.guards import IngestLimits, check_archive, check_size, file_size
from engine.knowledge.parsers import PARSERS, Section
from engine.knowledge.scan import Scanner, scan_all

OFFICE_KINDS = frozenset({sniffing.DOCX, sniffing.XLSX, sniffing.PPTX})


@dataclass
class Extracted:
    """A checked file: its real kind and a lazy stream of its sections."""

    kind: str
    media_type: str
    sections: Iterator[Section]


def _bounded(sections: Iterator[Section], limits: IngestLimits) -> Iterator[Section]:
    """Stop at ``max_text_chars``; a file that yields no text at all is an error."""
    total = 0
    for section in sections:
        if not section.text.strip():
            continue
        total += len(section.text)
        if total > limits.max_text_chars:
            return
        yield section
    if total == 0:
        raise NoTextFound()


def check_file(
    file: BinaryIO,
    filename: str,
    limits: IngestLimits,
    scanners: Sequence[Scanner] = (),
) -> str:
    """Everything but parsing: returns the file's real kind or raises why it is refused."""
    check_size(file_size(file), limits)
    kind = sniffing.sniff(file, filename)
    if kind in OFFICE_KINDS:
        check_archive(file, limits)
    verdict = scan_all(scanners, file)
    if verdict is not None:
        raise MalwareDetected(
            f"The {verdict.scanner} scanner matched {', '.join(verdict.matches)}; the file was "
            "quarantined and not indexed.",
            scanner=verdict.scanner,
            matches=", ".join(verdict.matches),
        )
    return kind


def extract(
    file: BinaryIO,
    filename: str,
    limits: IngestLimits | None = None,
    scanners: Sequence[Scanner] = (),
) -> Extracted:
    """Check ``file`` (seekable) and return its sections as a lazy stream."""
    bounds = limits or IngestLimits()
    kind = check_file(file, filename, bounds, scanners)
    file.seek(0)
    sections = _bounded(PARSERS[kind](file, bounds), bounds)
    return Extracted(kind, sniffing.MEDIA_TYPES[kind], sections)
