"""HTML: visible text only (scripts, styles and templates removed), headings → section path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from engine.knowledge.guards import IngestLimits
from engine.knowledge.parsers.base import Section
from engine.knowledge.parsers.text import read_text

_HIDDEN = ("script", "style", "noscript", "template", "iframe", "object", "svg", "head")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset(
    [
        "p",
        "div",
        "li",
        "tr",
        "br",
        "pre",
        "blockquote",
        "section",
        "article",
        "table",
        "ul",
        "ol",
        "dd",
        "dt",
        "figcaption",
    ]
)


def _heading_of(node: NavigableString) -> tuple[int, Tag] | None:
    for parent in node.parents:
        if isinstance(parent, Tag) and parent.name in _HEADINGS:
            return _HEADINGS[parent.name], parent
    return None


def parse_html(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Text between headings becomes one section, under the heading path."""
    soup = BeautifulSoup(read_text(file, limits), "lxml")
    for tag in soup.find_all(_HIDDEN):
        tag.decompose()
    root = soup.body or soup
    path: list[str] = []
    parts: list[str] = []
    seen_headings: set[int] = set()

    def flush() -> Iterator[Section]:
        text = " ".join(parts)
        parts.clear()
        lines = [" ".join(line.split()) for line in text.split("\n")]
        cleaned = "\n".join(line for line in lines if line)
        if cleaned:
            yield Section(cleaned, path=tuple(path))

    for node in root.descendants:
        if isinstance(node, Tag):
            if node.name in _BLOCKS:
                parts.append("\n")
            continue
        if not isinstance(node, NavigableString) or isinstance(node, Comment):
            continue
        heading = _heading_of(node)
        if heading is not None:
            level, tag = heading
            if id(tag) not in seen_headings:
                seen_headings.add(id(tag))
                yield from flush()
                del path[level - 1 :]
                path.extend([""] * (level - 1 - len(path)))
                path.append(" ".join(tag.get_text(" ").split()))
            continue
        parts.append(str(node))
    yield from flush()
