"""Knowledge: parse → chunk → embed → fuse, as a library (no users, storage or HTTP).

The appliance stores documents, chunks (SQLCipher + FTS5) and vectors (Chroma) and applies
access control; it calls what is exported here.
"""

from engine.knowledge.chunking import Chunk, ChunkingOptions, chunk_sections, document_text
from engine.knowledge.embedders import (
    DEFAULT_EMBEDDER,
    EMBEDDERS,
    Embedder,
    EmbedderUnavailable,
    load_embedder,
)
from engine.knowledge.errors import IngestError
from engine.knowledge.fusion import reciprocal_rank_fusion
from engine.knowledge.guards import IngestLimits
from engine.knowledge.hits import SearchHit
from engine.knowledge.parsers import Section
from engine.knowledge.pipeline import Extracted, check_file, extract
from engine.knowledge.scan import ClamdScanner, Scanner, ScanVerdict, YaraScanner

__all__ = [
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "Chunk",
    "ChunkingOptions",
    "ClamdScanner",
    "Embedder",
    "EmbedderUnavailable",
    "Extracted",
    "IngestError",
    "IngestLimits",
    "ScanVerdict",
    "Scanner",
    "SearchHit",
    "Section",
    "YaraScanner",
    "check_file",
    "chunk_sections",
    "document_text",
    "extract",
    "load_embedder",
    "reciprocal_rank_fusion",
]
