"""Knowledge-base errors: each with a stable code and HTTP status (see docs/api.md).

Engine ingestion errors (``engine.knowledge.errors``) keep their codes; :func:`from_ingest`
gives each the matching appliance error so the API answers with the right status.
"""

from __future__ import annotations

from appliance.errors import EnclaveError
from engine.knowledge.errors import IngestError


class KnowledgeFileRejected(EnclaveError):
    code = "knowledge_file_rejected"
    http_status = 422
    title = "File rejected"
    default_message = "The file cannot be added to the knowledge base."


class FileEmpty(KnowledgeFileRejected):
    code = "file_empty"
    http_status = 422
    title = "Empty file"
    default_message = "The file is empty; there is nothing to index."


class FileTooLargeError(KnowledgeFileRejected):
    code = "file_too_large"
    http_status = 413
    title = "File too large"
    default_message = "The file is larger than the upload limit."


class FileTypeUnsupported(KnowledgeFileRejected):
    code = "file_type_unsupported"
    http_status = 415
    title = "Unsupported file type"
    default_message = "This kind of file cannot be indexed."


class FileTypeMismatchError(KnowledgeFileRejected):
    code = "file_type_mismatch"
    http_status = 415
    title = "File type mismatch"
    default_message = "The file's content does not match its extension."


class FilePolyglot(KnowledgeFileRejected):
    code = "file_polyglot"
    http_status = 415
    title = "Ambiguous file"
    default_message = "The file is valid as more than one format at once; it was refused."


class ArchiveBombError(KnowledgeFileRejected):
    code = "archive_bomb"
    http_status = 422
    title = "Decompression bomb"
    default_message = "The file expands to far more data than it holds."


class FileEncryptedError(KnowledgeFileRejected):
    code = "file_encrypted"
    http_status = 422
    title = "Password-protected file"
    default_message = "The file is password-protected; upload an unprotected copy."


class FileCorruptError(KnowledgeFileRejected):
    code = "file_corrupt"
    http_status = 422
    title = "Damaged file"
    default_message = "The file is damaged or truncated and cannot be read."


class TextDecodeError(KnowledgeFileRejected):
    code = "text_decode_failed"
    http_status = 422
    title = "Unreadable text encoding"
    default_message = "The text is not valid in any encoding we could detect."


class TooManyPagesError(KnowledgeFileRejected):
    code = "too_many_pages"
    http_status = 422
    title = "Too many pages"
    default_message = "The document has more pages than the limit."


class NoTextError(KnowledgeFileRejected):
    code = "no_text_found"
    http_status = 422
    title = "No text"
    default_message = "No text could be extracted from the file."


class MalwareFound(KnowledgeFileRejected):
    code = "malware_detected"
    http_status = 422
    title = "Malware detected"
    default_message = "The malware scanner flagged the file; it was quarantined."


class ScannerDown(EnclaveError):
    code = "scanner_unavailable"
    http_status = 503
    title = "Malware scanner unavailable"
    default_message = "The configured malware scanner cannot be reached."


class DuplicateDocument(EnclaveError):
    code = "duplicate_document"
    http_status = 409
    title = "Duplicate document"
    default_message = "This knowledge base already holds a document with the same content."


class EmbedderMismatch(EnclaveError):
    code = "embedder_mismatch"
    http_status = 409
    title = "Embedder mismatch"
    default_message = (
        "The vector collection was built with another embedding model; re-embed the knowledge "
        "base to change models."
    )


class EmbedderMissing(EnclaveError):
    code = "embedder_unavailable"
    http_status = 503
    title = "Embedder unavailable"
    default_message = "The embedding model is not installed on this machine."


class JobNotCancellable(EnclaveError):
    code = "job_not_cancellable"
    http_status = 409
    title = "Job cannot be cancelled"
    default_message = "The job has already finished, or is of a kind that cannot be cancelled."


_BY_CODE: dict[str, type[KnowledgeFileRejected] | type[ScannerDown]] = {
    cls.code: cls
    for cls in (
        FileEmpty,
        FileTooLargeError,
        FileTypeUnsupported,
        FileTypeMismatchError,
        FilePolyglot,
        ArchiveBombError,
        FileEncryptedError,
        FileCorruptError,
        TextDecodeError,
        TooManyPagesError,
        NoTextError,
        MalwareFound,
        ScannerDown,
    )
}


def from_ingest(exc: IngestError) -> EnclaveError:
    """The appliance error for an engine ingestion error (same code, message and context)."""
    cls = _BY_CODE.get(exc.code, KnowledgeFileRejected)
    return cls(exc.message, **exc.context)
