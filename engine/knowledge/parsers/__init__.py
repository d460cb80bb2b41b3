"""File parsers, one per format, all with the same shape: ``(file, limits) -> Iterator[Section]``.

Adding a format is copying a sibling module and naming it in :data:`PARSERS`.
"""

from __future__ import annotations

from engine.knowledge import sniff
from engine.knowledge.parsers.base import Parser, Section
from engine.knowledge.parsers.html import parse_html
from engine.knowledge.parsers.office import parse_docx, parse_pptx, parse_xlsx
from engine.knowledge.parsers.pdf import parse_pdf
from engine.knowledge.parsers.text import (
    decode,
    parse_csv,
    parse_json,
    parse_markdown,
    parse_text,
)

PARSERS: dict[str, Parser] = {
    sniff.PDF: parse_pdf,
    sniff.DOCX: parse_docx,
    sniff.XLSX: parse_xlsx,
    sniff.PPTX: parse_pptx,
    sniff.HTML: parse_html,
    sniff.MARKDOWN: parse_markdown,
    sniff.TEXT: parse_text,
    sniff.CSV: parse_csv,
    sniff.JSON: parse_json,
    sniff.CODE: parse_text,
}

__all__ = ["PARSERS", "Parser", "Section", "decode"]
