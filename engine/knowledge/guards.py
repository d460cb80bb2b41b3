"""Limits checked before a parser touches a file: size, pages, and ZIP expansion.

Office files are ZIP archives, and a ZIP's header may lie about how large an entry is, so the
archive check reads every entry through a counting window and stops at the first limit hit: a
decompression bomb costs a bounded amount of CPU and memory, never the whole expansion.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from engine.knowledge.errors import ArchiveBomb, EmptyFile, FileCorrupt, FileTooLarge

_READ = 1 << 20


@dataclass(frozen=True)
class IngestLimits:
    """The bounds a file must stay within to be ingested."""

    max_bytes: int = 256 * 1024 * 1024
    max_pages: int = 5000
    max_archive_entries: int = 10_000
    # Compressed → uncompressed ratio allowed per entry and for the whole archive.
    max_archive_ratio: float = 100.0
    max_archive_bytes: int = 512 * 1024 * 1024
    # Extracted text kept per document (beyond it, the rest is ignored and the job says so).
    max_text_chars: int = 50_000_000


def file_size(file: BinaryIO) -> int:
    """Size of an open file without reading it (a sparse 5 GB file costs nothing)."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pos = file.tell()
        file.seek(0, 2)
        size = file.tell()
        file.seek(pos)
        return size


def check_size(size: int, limits: IngestLimits) -> None:
    """Refuse empty files and files over ``limits.max_bytes``."""
    if size == 0:
        raise EmptyFile()
    if size > limits.max_bytes:
        raise FileTooLarge(
            f"The file is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.1f} MB.",
            size=size,
            limit=limits.max_bytes,
        )


def check_archive(file: BinaryIO, limits: IngestLimits) -> None:
    """Refuse a ZIP (an Office file) that has too many entries or expands too much.

    Every entry is decompressed into a small rolling buffer and counted, because the sizes in
    the archive's directory are whatever the file's author wrote there.
    """
    compressed_total = max(file_size(file), 1)
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_archive_entries:
                raise ArchiveBomb(
                    f"The archive has {len(infos)} entries; the limit is "
                    f"{limits.max_archive_entries}.",
                    entries=len(infos),
                )
            expanded = 0
            for info in infos:
                entry = 0
                budget = max(info.compress_size, 1) * limits.max_archive_ratio
                with archive.open(info) as stream:
                    while block := stream.read(_READ):
                        entry += len(block)
                        expanded += len(block)
                        if entry > budget and entry > _READ:
                            raise ArchiveBomb(
                                f"Entry {info.filename!r} expands more than "
                                f"{limits.max_archive_ratio:.0f} times its compressed size.",
                                entry=info.filename,
                            )
                        if expanded > limits.max_archive_bytes:
                            raise ArchiveBomb(
                                "The archive expands past "
                                f"{limits.max_archive_bytes / 1e6:.0f} MB.",
                            )
            if expanded > _READ and expanded / compressed_total > limits.max_archive_ratio:
                raise ArchiveBomb(
                    f"The archive expands {expanded / compressed_total:.0f} times its size."
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise FileCorrupt(f"The Office file's ZIP structure is damaged: {exc}.") from exc
    except NotImplementedError as exc:  # an unknown compression method
        raise FileCorrupt(f"The Office file uses an unsupported compression: {exc}.") from exc
    finally:
        file.seek(0)
