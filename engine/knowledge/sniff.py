"""What a file really is, from its bytes (magic numbers), never from its name.

The extension only picks among text flavours (Markdown, CSV, code...) once the bytes say
"text"; when the extension promises a binary format the bytes do not have, the file is refused
(``file_type_mismatch``). A file that is valid as two formats at once (a PDF with a ZIP archive
appended, say) is refused as a polyglot: different readers would see different content.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import PurePath
from typing import BinaryIO

from engine.knowledge.errors import (
    EmptyFile,
    FileTypeMismatch,
    PolyglotFile,
    UnsupportedFileType,
)

PDF, DOCX, XLSX, PPTX = "pdf", "docx", "xlsx", "pptx"
HTML, MARKDOWN, TEXT, CSV, JSON, CODE = "html", "markdown", "text", "csv", "json", "code"
KINDS = (PDF, DOCX, XLSX, PPTX, HTML, MARKDOWN, TEXT, CSV, JSON, CODE)

MEDIA_TYPES = {
    PDF: "application/pdf",
    DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    HTML: "text/html",
    MARKDOWN: "text/markdown",
    TEXT: "text/plain",
    CSV: "text/csv",
    JSON: "application/json",
    CODE: "text/x-source",
}

_TEXT_EXTENSIONS = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".csv": CSV,
    ".tsv": CSV,
    ".json": JSON,
    ".html": HTML,
    ".htm": HTML,
    ".txt": TEXT,
    ".text": TEXT,
    ".log": TEXT,
    ".rst": TEXT,
}
_CODE_EXTENSIONS = frozenset(
    [
        ".py",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".sh",
        ".bash",
        ".sql",
        ".kt",
        ".swift",
        ".scala",
        ".r",
        ".m",
        ".pl",
        ".lua",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".xml",
        ".css",
        ".scss",
    ]
)
_BINARY_EXTENSIONS = {".pdf": PDF, ".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX}

# Formats we recognise only to refuse them by name (a clearer message than "unsupported").
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office (OLE2) file"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"ID3", "MP3 audio"),
    (b"OggS", "Ogg media"),
    (b"RIFF", "RIFF media"),
)
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)
_ZIP_EOCD = b"PK\x05\x06"
HEAD_BYTES = 8192
TAIL_BYTES = 65536 + 22  # the ZIP end-of-central-directory record lies within this tail


def _read_head_tail(file: BinaryIO) -> tuple[bytes, bytes, int]:
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(max(0, size - TAIL_BYTES))
    tail = file.read(TAIL_BYTES)
    file.seek(0)
    return head, tail, size


def _office_kind(file: BinaryIO) -> str:
    """DOCX, XLSX or PPTX by the archive's part names (an OOXML package's layout)."""
    try:
        with zipfile.ZipFile(file) as archive:
            names = set(archive.namelist()[:10000])
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsupportedFileType("The ZIP archive is damaged.") from exc
    finally:
        file.seek(0)
    if "[Content_Types].xml" in names:
        prefixes = {n.split("/", 1)[0] for n in names}
        for prefix, kind in (("word", DOCX), ("xl", XLSX), ("ppt", PPTX)):
            if prefix in prefixes:
                return kind
    raise UnsupportedFileType("ZIP archives other than Office documents cannot be indexed.")


def _text_kind(filename: str, head: bytes) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix in _TEXT_EXTENSIONS:
        return _TEXT_EXTENSIONS[suffix]
    if suffix in _CODE_EXTENSIONS:
        return CODE
    if _HTML_START.match(head.lstrip(b"\xef\xbb\xbf")):
        return HTML
    return TEXT


def sniff(file: BinaryIO, filename: str) -> str:
    """The file's kind (one of :data:`KINDS`) from its bytes; raises an
    :class:`~engine.knowledge.errors.IngestError` for empty, unknown, mismatched or
    polyglot files. ``file`` must be seekable; it is left at offset 0."""
    head, tail, size = _read_head_tail(file)
    if size == 0:
        raise EmptyFile()
    suffix = PurePath(filename).suffix.lower()
    pdf_at = head.find(b"%PDF-", 0, 1024)
    if head.startswith(b"PK\x03\x04"):
        if pdf_at >= 0:
            raise PolyglotFile("The file is both a ZIP archive and a PDF; it was refused.")
        kind = _office_kind(file)
    elif pdf_at == 0:
        if _ZIP_EOCD in tail:
            raise PolyglotFile("The PDF carries a ZIP archive inside it; it was refused.")
        kind = PDF
    elif pdf_at > 0:
        # Readers accept a PDF header anywhere in the first KiB: the prefix is another format.
        raise PolyglotFile("The file hides a PDF behind other content; it was refused.")
    else:
        for magic, name in _OTHER_MAGIC:
            if head.startswith(magic):
                raise UnsupportedFileType(f"This is a {name}, which cannot be indexed.")
        if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UnsupportedFileType("This is a binary file of a kind that cannot be indexed.")
        kind = _text_kind(filename, head)
    expected = _BINARY_EXTENSIONS.get(suffix)
    if expected is not None and expected != kind:
        raise FileTypeMismatch(
            f"The name says {suffix} but the content is {kind.upper()}; rename or convert it.",
            declared=suffix,
            detected=kind,
        )
    if kind in _BINARY_EXTENSIONS.values() and suffix in (
        _TEXT_EXTENSIONS.keys() | _CODE_EXTENSIONS
    ):
        raise FileTypeMismatch(
            f"The name says {suffix} but the content is {kind.upper()}; rename it.",
            declared=suffix,
            detected=kind,
        )
    return kind
