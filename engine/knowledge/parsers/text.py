"""Text formats: charset detection, then plain text, Markdown (ATX headings → section path),
CSV (rows as ``column: value``), JSON (``path: value`` lines) and source code."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from charset_normalizer import from_bytes

from engine.knowledge.errors import FileCorrupt, TextDecodeFailed
from engine.knowledge.guards import IngestLimits
from engine.knowledge.parsers.base import Section

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A valid multi-byte UTF-8 sequence: text that has these was meant to be UTF-8.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_MAX_CHAOS = 0.2
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINES_PER_SECTION = 400


def decode(data: bytes) -> str:
    """Bytes → text: a BOM wins, then strict UTF-8, then charset detection. Text that is
    UTF-8 with broken sequences is refused rather than guessed into mojibake."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise TextDecodeFailed(
                    f"The text starts with a {encoding} byte-order mark but is not valid "
                    f"{encoding} (byte {exc.start})."
                ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if _UTF8_MULTIBYTE.search(data):
            raise TextDecodeFailed(
                f"The text is UTF-8 with an invalid byte sequence at byte {exc.start}; "
                "re-save it as UTF-8.",
                offset=exc.start,
            ) from exc
    best = from_bytes(data).best()
    if best is None or best.chaos > _MAX_CHAOS:
        raise TextDecodeFailed("The text's character encoding could not be recognised.")
    return str(best)


def read_text(file: BinaryIO, limits: IngestLimits) -> str:
    """The whole file decoded (text files are bounded by the upload limit)."""
    return decode(file.read(limits.max_bytes + 1))


def _blocks(lines: list[str], path: tuple[str, ...] = ()) -> Iterator[Section]:
    for start in range(0, len(lines), _LINES_PER_SECTION):
        text = "\n".join(lines[start : start + _LINES_PER_SECTION]).strip()
        if text:
            yield Section(text, path=path)


def parse_text(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Plain text (and source code): blocks of lines, no structure assumed."""
    yield from _blocks(read_text(file, limits).splitlines())


def parse_markdown(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Sections split at ATX headings (``#`` … ``######``), outside fenced code blocks."""
    path: list[str] = []
    lines: list[str] = []
    fenced = False
    for line in read_text(file, limits).splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            yield from _blocks(lines, tuple(path))
            lines = []
            level = len(match.group(1))
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(match.group(2).strip())
            continue
        lines.append(line)
    yield from _blocks(lines, tuple(path))


def parse_csv(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Each row as ``column: value; …`` so a hit on a value names its column."""
    text = read_text(file, limits)
    dialect: type[csv.Dialect]
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(rows, [])
        lines = []
        for row in rows:
            pairs = (f"{h}: {v}" for h, v in zip(header, row, strict=False) if v.strip())
            lines.append("; ".join(pairs))
    except csv.Error as exc:
        raise FileCorrupt(f"The CSV cannot be read: {exc}.") from exc
    if not lines and header:
        lines = [", ".join(header)]
    yield from _blocks(lines)


def _flatten(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    elif value is not None and str(value).strip():
        out.append(f"{path}: {value}" if path else str(value))


def parse_json(file: BinaryIO, limits: IngestLimits) -> Iterator[Section]:
    """Every leaf as a ``path.to.key: value`` line."""
    try:
        value = json.loads(read_text(file, limits))
    except json.JSONDecodeError as exc:
        raise FileCorrupt(f"The JSON is invalid: {exc.msg} at line {exc.lineno}.") from exc
    except RecursionError as exc:
        raise FileCorrupt("The JSON is nested too deeply.") from exc
    lines: list[str] = []
    _flatten(value, "", lines)
    yield from _blocks(lines)
