"""Why a file was refused or failed to parse: one class per reason, each with a stable code.

The appliance maps each ``code`` to an HTTP status and a translatable message; the engine only
says what went wrong, in words a user can act on.
"""

from __future__ import annotations

from engine.errors import EngineError


class IngestError(EngineError):
    """A file that cannot be ingested (the file's fault, never the server's)."""

    code = "ingest_failed"
    default_message = "The file could not be ingested."


class EmptyFile(IngestError):
    code = "file_empty"
    default_message = "The file is empty; there is nothing to index."


class FileTooLarge(IngestError):
    code = "file_too_large"
    default_message = "The file is larger than the upload limit."


class UnsupportedFileType(IngestError):
    code = "file_type_unsupported"
    default_message = "This kind of file cannot be indexed."


class FileTypeMismatch(IngestError):
    code = "file_type_mismatch"
    default_message = "The file's content does not match its extension."


class PolyglotFile(IngestError):
    code = "file_polyglot"
    default_message = "The file is valid as more than one format at once; it was refused."


class ArchiveBomb(IngestError):
    code = "archive_bomb"
    default_message = "The file expands to far more data than it holds (a decompression bomb)."


class FileEncrypted(IngestError):
    code = "file_encrypted"
    default_message = "The file is password-protected; upload an unprotected copy."


class FileCorrupt(IngestError):
    code = "file_corrupt"
    default_message = "The file is damaged or truncated and cannot be read."


class TextDecodeFailed(IngestError):
    code = "text_decode_failed"
    default_message = "The text is not valid in any encoding we could detect (e.g. broken UTF-8)."


class TooManyPages(IngestError):
    code = "too_many_pages"
    default_message = "The document has more pages than the limit."


class NoTextFound(IngestError):
    code = "no_text_found"
    default_message = "No text could be extracted from the file (a scan without OCR?)."


class MalwareDetected(IngestError):
    code = "malware_detected"
    default_message = "The malware scanner flagged the file; it was quarantined."


class ScannerUnavailable(IngestError):
    code = "scanner_unavailable"
    retryable = True
    default_message = "The configured malware scanner cannot be reached; the file was not indexed."
