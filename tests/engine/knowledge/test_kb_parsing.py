"""Parsers keep structure (pages, headings, sheets, slides); chunks carry exact spans."""

from __future__ import annotations

import io

import numpy as np
import pytest

from engine.knowledge import (
    ChunkingOptions,
    Section,
    chunk_sections,
    document_text,
    extract,
    load_embedder,
    reciprocal_rank_fusion,
)
from tests.engine.knowledge.kb_samples import docx_bytes, pdf_bytes, pptx_bytes, xlsx_bytes


def sections_of(name: str, data: bytes) -> list[Section]:
    return list(extract(io.BytesIO(data), name).sections)


def test_pdf_keeps_page_numbers() -> None:
    found = sections_of("a.pdf", pdf_bytes(["First page words", "", "Third page words"]))
    assert [(s.page, s.text.strip()) for s in found] == [
        (1, "First page words"),
        (3, "Third page words"),
    ]


def test_docx_headings_become_the_section_path() -> None:
    data = docx_bytes(
        [("h1", "Safety"), ("p", "Wear gloves."), ("h2", "Chemicals"), ("p", "Store acids low.")]
    )
    found = sections_of("manual.docx", data)
    assert [(s.path, s.text) for s in found] == [
        (("Safety",), "Wear gloves."),
        (("Safety", "Chemicals"), "Store acids low."),
    ]


def test_xlsx_rows_under_the_sheet_name() -> None:
    found = sections_of("p.xlsx", xlsx_bytes([["item", "price"], ["bolt", 3]], title="Parts"))
    assert found == [Section("item | price\nbolt | 3", path=("Parts",))]


def test_pptx_one_page_per_slide_titled() -> None:
    found = sections_of(
        "deck.pptx", pptx_bytes([("Roadmap", "Ship in May"), ("Risks", "Late parts")])
    )
    assert [(s.page, s.path, s.text) for s in found] == [
        (1, ("Roadmap",), "Roadmap\nShip in May"),
        (2, ("Risks",), "Risks\nLate parts"),
    ]


def test_html_drops_scripts_and_styles() -> None:
    html = (
        b"<!doctype html><html><head><title>t</title><style>.x{color:red}</style></head><body>"
        b"<script>steal()</script><h1>Guide</h1><p>Open the <b>valve</b>.</p>"
        b"<noscript>enable js</noscript><h2>Close</h2><p>Turn it back.</p></body></html>"
    )
    found = sections_of("page.html", html)
    text = " ".join(s.text for s in found)
    assert "steal" not in text and "color" not in text and "enable js" not in text
    assert [(s.path, s.text) for s in found] == [
        (("Guide",), "Open the valve ."),
        (("Guide", "Close"), "Turn it back."),
    ]


def test_markdown_headings_outside_code_fences() -> None:
    md = b"# Setup\nInstall it.\n```\n# not a heading\n```\n## Linux\nUse apt.\n"
    found = sections_of("README.md", md)
    assert [s.path for s in found] == [("Setup",), ("Setup", "Linux")]
    assert "# not a heading" in found[0].text


def test_csv_rows_name_their_columns() -> None:
    found = sections_of("t.csv", b"name,city\nAda,London\nGrace,Arlington\n")
    assert found[0].text == "name: Ada; city: London\nname: Grace; city: Arlington"


def test_json_leaves_with_paths() -> None:
    found = sections_of("c.json", b'{"server": {"port": 8080, "hosts": ["a", "b"]}}')
    assert found[0].text == "server.port: 8080\nserver.hosts[0]: a\nserver.hosts[1]: b"


def test_source_code_by_extension() -> None:
    extracted = extract(io.BytesIO(b"def main():\n    return 42\n"), "tool.py")
    assert extracted.kind == "code"


def test_chunks_overlap_and_spans_point_at_the_text() -> None:
    words = [f"w{n}" for n in range(100)]
    sections = [
        Section("intro words here", page=1),
        Section(" ".join(words), page=2, path=("A", "B")),
    ]
    chunks = list(chunk_sections(sections, ChunkingOptions(max_tokens=40, overlap=10)))
    full = document_text(sections)
    for chunk in chunks:
        assert full[chunk.start : chunk.end] == chunk.text
    assert [c.page for c in chunks] == [1, 2, 2, 2]  # windows 0-40, 30-70, 60-100
    assert chunks[1].section == "A › B"
    second, third = chunks[1].text.split(), chunks[2].text.split()
    assert second[-10:] == third[:10]  # the overlap
    assert chunks[-1].text.split()[-1] == "w99"


def test_rrf_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])
    assert [key for key, _ in fused] == ["b", "c", "a", "d"]
    weighted = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], weights=[3.0, 1.0])
    assert weighted[0][0] == "a"
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_minilm_embeds_meaning() -> None:
    embedder = load_embedder("minilm-l6-v2-int8")
    docs = embedder.embed_documents(
        [
            "The cat sat on the mat.",
            "Quarterly revenue grew by ten percent.",
            "A kitten rests on a rug.",
        ]
    )
    assert docs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    query = embedder.embed_query("a small cat lying on a carpet")
    scores = docs @ query
    assert scores[2] > scores[1] and scores[0] > scores[1]
    # Batching and padding do not change a text's vector.
    alone = embedder.embed_documents(["A kitten rests on a rug."])[0]
    assert np.allclose(alone, docs[2], atol=1e-3)
