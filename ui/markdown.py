"""Model text as safe HTML: Markdown without raw HTML, highlighted code, then sanitised.

Two independent guards: markdown-it-py runs with ``html`` disabled, so a ``<script>`` in the
model's answer is escaped to text; the result then goes through nh3 (an allow-list sanitiser),
so even a renderer bug cannot put an element, an event attribute or a ``javascript:`` link on
the page. Code blocks are highlighted server-side by Pygments (CSS classes only, no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"*": {"class"}, "a": {"href", "title"}, "td": {"style"}, "th": {"style"}}
CODE_CSS_CLASS = "codehilite"
_FORMATTER = HtmlFormatter(cssclass=CODE_CSS_CLASS)


def sanitize(html: str) -> str:
    """Keep only harmless tags and attributes; links only to http(s) and mail addresses."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


def highlight_code(code: str, language: str = "") -> str:
    """Pygments HTML for ``code`` (plain text when the language is unknown)."""
    try:
        lexer = get_lexer_by_name(language.strip().lower()) if language.strip() else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return str(highlight(code, lexer, _FORMATTER))


def _highlight(code: str, language: str, _attrs: str) -> str:
    return highlight_code(code, language)


_MD = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    .enable("table")
    .enable("strikethrough")
)


def render(text: str) -> str:
    """Markdown to sanitised HTML (never raw HTML from ``text``)."""
    return sanitize(_MD.render(text))


def code_css() -> str:
    """The stylesheet for highlighted code (served inline with the page)."""
    return str(_FORMATTER.get_style_defs(f".{CODE_CSS_CLASS}"))


@dataclass(frozen=True)
class Segment:
    """A piece of a message: Markdown prose (as safe HTML) or a code block to show with a
    copy button."""

    html: str
    code: str | None = None
    language: str = ""


def segments(text: str) -> list[Segment]:
    """Split ``text`` into prose and fenced code blocks, each rendered safely."""
    out: list[Segment] = []
    lines = text.splitlines(keepends=True)
    consumed = 0
    for token in _MD.parse(text):
        if token.type not in ("fence", "code_block") or token.map is None or token.level != 0:
            continue
        start, end = token.map
        before = "".join(lines[consumed:start])
        if before.strip():
            out.append(Segment(render(before)))
        consumed = end
        language = token.info.strip().split(" ")[0] if token.info else ""
        html = sanitize(highlight_code(token.content, language))
        out.append(Segment(html, token.content, language))
    rest = "".join(lines[consumed:])
    if rest.strip():
        out.append(Segment(render(rest)))
    return out
