"""PDF: text page by page (page numbers kept), with pypdf; encrypted and truncated files refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

from engine.knowledge.errors import FileCorrupt, FileEncrypted, TooManyPages
from engine.knowledge.guards import IngestLimits
from engine.knowledge.parsers.base import Section

_TAIL = 2048


def _check_complete(file: BinaryIO) -> None:
    """A PDF ends with ``%%EOF`` (give or take whitespace); a cut-off upload does not."""
    file.seek(0, 2)
    size = file.tell()
    file.seek(max(0, size - _TAIL))
    tail = file.read()
    file.seek(0)
    if b"%%EOF" not in tail:
        raise FileCorrupt("The PDF is truncated (it has no end-of-file marker).")


def parse_pdf(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """One section per page; pages are read one at a time so memory stays bounded."""
    _check_complete(file)
    # pypdf logs recoverable oddities as warnings; they are not the user's concern.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(file, strict=False)
        if reader.is_encrypted:
            # Some PDFs are "encrypted" with an empty user password: readable by anyone.
            try:
                if not reader.decrypt(""):
                    raise FileEncrypted()
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise FileEncrypted() from exc
        count = len(reader.pages)
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError) as exc:
        raise FileCorrupt(f"The PDF cannot be read: {exc}.") from exc
    if count > limits.max_pages:
        raise TooManyPages(
            f"The PDF has {count} pages; the limit is {limits.max_pages}.", pages=count
        )
    for number in range(count):
        try:
            text = reader.pages[number].extract_text() or ""
        except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError) as exc:
            raise FileCorrupt(f"Page {number + 1} of the PDF cannot be read: {exc}.") from exc
        if text.strip():
            yield Section(text, page=number + 1)
