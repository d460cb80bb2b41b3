"""The bad-file corpus: every file gives its own error code, never a crash or a hang."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from engine.knowledge import IngestLimits, chunk_sections, extract
from engine.knowledge.errors import IngestError
from tests.engine.knowledge.kb_samples import (
    docx_bytes,
    pdf_bytes,
    write_pdf,
    write_zip_bomb_docx,
)


def ingest_code(path: Path, name: str | None = None, limits: IngestLimits | None = None) -> str:
    """The error code ingesting ``path`` gives ("ok" when it ingests)."""
    with path.open("rb") as fh:
        try:
            extracted = extract(fh, name or path.name, limits)
            for _ in chunk_sections(extracted.sections):
                pass
        except IngestError as exc:
            assert exc.message  # a human message, always
            return exc.code
    return "ok"


def test_truncated_pdf(tmp_path: Path) -> None:
    data = pdf_bytes([f"page {n} text" for n in range(5)])
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: len(data) // 2])
    assert ingest_code(path) == "file_corrupt"


def test_encrypted_pdf(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    path.write_bytes(pdf_bytes(["confidential"], password="s3cret"))
    assert ingest_code(path) == "file_encrypted"


def test_pdf_encrypted_with_an_empty_password_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "open.pdf"
    path.write_bytes(pdf_bytes(["readable by anyone"], password=""))
    assert ingest_code(path) == "ok"


def test_zip_bomb_disguised_as_docx(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    write_zip_bomb_docx(path, megabytes=48)
    assert path.stat().st_size < 1_000_000
    assert ingest_code(path) == "archive_bomb"


def test_archive_with_too_many_entries(tmp_path: Path) -> None:
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w/>")
        for n in range(60):
            archive.writestr(f"word/media/{n}.bin", b"x")
    assert ingest_code(path, limits=IngestLimits(max_archive_entries=50)) == "archive_bomb"


def test_five_gigabyte_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(5 * 1024**3)  # sparse: no 5 GB is ever written
    assert os.stat(path).st_blocks * 512 < 1024 * 1024
    tracemalloc.start()
    try:
        assert ingest_code(path) == "file_too_large"
        assert tracemalloc.get_traced_memory()[1] < 5 * 1024 * 1024
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("notes.pdf", b"just some text, not a PDF at all\n", "file_type_mismatch"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "file_type_unsupported"),
        ("tool.md", b"\x7fELF\x02\x01\x01" + b"\0" * 64, "file_type_unsupported"),
        ("blob.txt", b"abc\0\0\0def" * 10, "file_type_unsupported"),
    ],
)
def test_wrong_extension_or_binary(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert ingest_code(path) == code


def test_office_file_named_pdf_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "letter.pdf"
    path.write_bytes(docx_bytes([("p", "hello")]))
    assert ingest_code(path) == "file_type_mismatch"


def test_pdf_named_txt_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(pdf_bytes(["hello"]))
    assert ingest_code(path) == "file_type_mismatch"


def test_polyglot_pdf_with_zip_appended(tmp_path: Path) -> None:
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as archive:
        archive.writestr("payload.js", "alert(1)")
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf_bytes(["invoice"]) + payload.getvalue())
    assert ingest_code(path) == "file_polyglot"


def test_polyglot_html_hiding_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(b"<html><body>hi</body></html>\n" + pdf_bytes(["hidden"]))
    assert ingest_code(path) == "file_polyglot"


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_bytes("Grüße aus Köln. ".encode() * 20 + b"\xff\xfe\xc3(" + b" more text")
    assert ingest_code(path) == "text_decode_failed"


def test_legacy_encoding_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(
        "Le café est très apprécié à Montréal, été comme hiver.\n".encode("cp1252") * 5
    )
    with path.open("rb") as fh:
        sections = list(extract(fh, path.name).sections)
    assert "café" in sections[0].text


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.touch()
    assert ingest_code(path) == "file_empty"


def test_whitespace_only_file_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.md"
    path.write_bytes(b"   \n\n\t\n")
    assert ingest_code(path) == "no_text_found"


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(b'{"a": [1, 2,')
    assert ingest_code(path) == "file_corrupt"


def test_too_many_pages(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf_bytes(["p"] * 12))
    assert ingest_code(path, limits=IngestLimits(max_pages=10)) == "too_many_pages"


# VmHWM (this process image's peak RSS), not ru_maxrss: Linux carries ru_maxrss across exec,
# so a child of a big test process would report the parent's size.
_COUNT_PAGES = """
import sys
from engine.knowledge import chunk_sections, extract
with open(sys.argv[1], "rb") as fh:
    pages = {c.page for c in chunk_sections(extract(fh, "manual.pdf").sections)}
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(len(pages), min(pages), max(pages), hwm.split()[1])
"""


def test_two_thousand_page_pdf_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    with path.open("wb") as fh:
        write_pdf(
            fh, [f"Chapter {n}: the valve number {n} must be checked daily" for n in range(2000)]
        )
    # A fresh process, so its peak RSS is this ingestion's alone — without the coverage
    # tracer the test run would otherwise start in it (it holds data for every line run).
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_PAGES, str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
        cwd=Path(__file__).parents[3],
        env=env,
    )
    count, first, last, peak_kib = (int(v) for v in done.stdout.split())
    assert (count, first, last) == (2000, 1, 2000)
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib} KiB"


def test_office_file_with_broken_xml(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types>')
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    assert ingest_code(path) == "file_corrupt"
