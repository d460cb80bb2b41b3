"""Office Open XML: Word (headings → section path), Excel (one section per sheet), PowerPoint
(one "page" per slide, titled by the slide title)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from engine.knowledge.errors import FileCorrupt
from engine.knowledge.guards import IngestLimits
from engine.knowledge.parsers.base import Section

_ROWS_PER_SECTION = 200


def _open_error(kind: str, exc: Exception) -> FileCorrupt:
    return FileCorrupt(f"The {kind} file cannot be opened: {exc}.")


def _heading_level(style_name: str) -> int | None:
    name = style_name.lower()
    if name == "title":
        return 1
    if name.startswith("heading "):
        digits = name.removeprefix("heading ").strip()
        return int(digits) if digits.isdigit() else None
    return None


def parse_docx(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Paragraphs and tables in body order; Heading N styles set the section path."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(file)
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as exc:
        raise _open_error("Word", exc) from exc
    path: list[str] = []
    lines: list[str] = []

    def flush() -> Iterator[Section]:
        text = "\n".join(lines).strip()
        lines.clear()
        if text:
            yield Section(text, path=tuple(path))

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style = block.style.name if block.style is not None else ""
            level = _heading_level(style or "")
            if level is not None and block.text.strip():
                yield from flush()
                del path[level - 1 :]
                path.append(block.text.strip())
                continue
            lines.append(block.text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                lines.append(" | ".join(c for c in cells if c))
    yield from flush()


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value)


def parse_xlsx(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Rows as ``a | b | c`` lines, a section per sheet (and per block of rows)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, SyntaxError) as exc:
        raise _open_error("Excel", exc) from exc
    try:
        for sheet in book.worksheets:
            lines: list[str] = []
            for row in sheet.iter_rows(values_only=True):
                cells = [_cell_text(v).strip() for v in row]
                if any(cells):
                    lines.append(" | ".join(cells).strip(" |"))
                if len(lines) >= _ROWS_PER_SECTION:
                    yield Section("\n".join(lines), path=(sheet.title,))
                    lines = []
            if lines:
                yield Section("\n".join(lines), path=(sheet.title,))
    finally:
        book.close()


def parse_pptx(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """One section per slide (``page`` is the slide number), titled by its title shape."""
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(file)
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError, PackageNotFoundError) as exc:
        raise _open_error("PowerPoint", exc) from exc
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        title_id = title_shape.shape_id if title_shape is not None else None
        texts = [
            shape.text_frame.text
            for shape in slide.shapes
            if shape.has_text_frame and shape.shape_id != title_id and shape.text_frame.text.strip()
        ]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                texts.append(notes)
        body = "\n".join(texts).strip()
        if title or body:
            yield Section(f"{title}\n{body}".strip(), page=number, path=(title,) if title else ())
