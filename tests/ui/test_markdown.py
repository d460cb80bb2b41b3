"""Model text becomes safe HTML: no element, event handler or script URL from the model ever
survives, while ordinary Markdown and highlighted code do."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from ui.chat_view import explain
from ui.markdown import render, sanitize, segments

ATTACKS = [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(1)">',
    "<iframe src='https://example.org'></iframe>",
    "[click](javascript:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    '<svg onload="alert(1)"></svg>',
    "<style>body{display:none}</style>",
]


class Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Elements()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("attack", ATTACKS)
def test_model_html_is_escaped_text(attack: str) -> None:
    html = render(f"Hello {attack} world")
    for tag, attrs in elements(html):
        assert tag in {"p", "a"}, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            assert not (value or "").lower().startswith("javascript"), html
    assert "Hello" in html and "world" in html


def test_the_sanitiser_removes_what_a_renderer_bug_could_let_through() -> None:
    dirty = '<p onclick="x()">a</p><script>x()</script><a href="javascript:x()">b</a>'
    clean = sanitize(dirty)
    assert clean == '<p>a</p><a rel="noopener noreferrer nofollow">b</a>'


def test_markdown_still_renders() -> None:
    html = render("# Title\n\n**bold** and a [link](https://example.org)\n\n| a |\n|---|\n| 1 |")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.org"' in html
    assert "<table>" in html


def test_code_blocks_are_split_out_and_highlighted() -> None:
    parts = segments("Intro\n\n```python\nprint('<b>')\n```\n\nOutro")
    assert [p.code for p in parts] == [None, "print('<b>')\n", None]
    code = parts[1]
    assert code.language == "python"
    assert '<span class="nb">print</span>' in code.html
    assert "&lt;b&gt;" in code.html and "<b>" not in code.html
    assert "Outro" in parts[2].html


def test_an_unknown_language_is_plain_text() -> None:
    (part,) = segments("```no-such-language\na < b\n```")
    assert "a &lt; b" in part.html


def test_run_errors_say_what_to_do() -> None:
    text = explain("queue_full", "The queue is full.")
    assert text.startswith("The queue is full.") and "Wait a minute" in text
    assert "(code: queue_full)" in text
    assert "tell an administrator" in explain("something_new", "Odd.")
