"""Tables as a terminal shows them: columns padded by display width, every cell escaped.

Left-aligned columns two spaces apart, a CJK character counted two columns wide, each cell passed
through ``shown``; printed whole (render_table) or a row at a time (echo_table), standard output
written in pieces by ``Lines``. Only cells and headers: the manual's labels and column sets are
cli/output.py's.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Sequence

import click

PADDED_WIDTH = 64  # columns a table pads a column to, at most (a serial fits; see render_table)


class Lines:
    """Text written to standard output in pieces of some size: one write per line of a
    million-row listing costs seconds."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        if len(self.parts) >= 1000:
            self.flush()

    def flush(self, end: str = "") -> None:
        click.echo("".join(self.parts) + end, nl=False)
        self.parts.clear()


def shown(text: str) -> str:
    """A value as a terminal may show it: every character ``str.isprintable`` refuses (a
    control character, an escape sequence's ESC, a line break, a bidi override) as its
    Python escape (``\\x1b``, ``\\n``, ``\\u202e``).

    Logins, names and serials are checked when stored, but an audit event also records what
    a refused command was given (``--admin``, the logins, a file name): printed raw, a line
    break there would forge a row of ``otpctl audit``, an escape sequence rewrite the screen.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def display_width(text: str) -> int:
    """Columns a terminal gives the text: wide (CJK) characters take two."""
    if text.isascii():
        return len(text)
    return _wide_text_width(text)


# Cached: a Japanese listing measures the same few labels (一般ユーザ, サービス利用中) for
# each of a million rows, twice.
@functools.lru_cache(maxsize=4096)
def _wide_text_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, padded by display width.

    A column is padded to at most ``PADDED_WIDTH``: a longer cell is printed whole and shifts
    the rest of its own line only.
    """
    body = [[shown(cell) for cell in row] for row in rows]
    return "\n".join(_table_lines(headers, body, _column_widths(headers, body)))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print ``render_table`` of the rows, a row at a time: until the last row has given the
    columns' widths, the rows are held compressed (a million users' rows in a few MB)."""
    spool = _Spool()
    widths = [display_width(h) for h in headers]
    for row in rows:
        cells = [shown(cell) for cell in row]
        widths = [max(w, display_width(cell)) for w, cell in zip(widths, cells, strict=True)]
        # A shown cell holds no tab or line break (both are escaped), so they can part cells
        # and rows.
        spool.add("\t".join(cells))
    widths = [min(w, PADDED_WIDTH) for w in widths]
    out = Lines()
    body = (line.split("\t") for line in spool.lines())
    for line in _table_lines(headers, body, widths):
        out.add(line + "\n")
    out.flush()


class _Spool:
    """Lines kept zlib-compressed in memory, to be read back once in order."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(1)
        self._chunks: list[bytes] = []
        self._pending: list[str] = []
        self._size = 0

    def add(self, line: str) -> None:
        self._pending.append(line)
        self._size += len(line)
        if self._size >= 1 << 16:
            self._compress()

    def _compress(self) -> None:
        if self._pending:
            text = "".join(line + "\n" for line in self._pending)
            self._chunks.append(self._compressor.compress(text.encode("utf-8", "surrogatepass")))
            self._pending.clear()
            self._size = 0

    def lines(self) -> Iterator[str]:
        self._compress()
        self._chunks.append(self._compressor.flush())
        decompressor = zlib.decompressobj()
        rest = ""
        for chunk in self._chunks:
            text = rest + decompressor.decompress(chunk).decode("utf-8", "surrogatepass")
            *whole, rest = text.split("\n")
            yield from whole
        self._chunks.clear()


def _column_widths(headers: Sequence[str], body: Iterable[Sequence[str]]) -> list[int]:
    widths = [display_width(h) for h in headers]
    for row in body:
        widths = [max(w, display_width(cell)) for w, cell in zip(widths, row, strict=True)]
    # Padded to the widest cell, one refused unlock given a login of 100,000 characters made
    # every line of ``otpctl audit`` that long: gigabytes for a year's events.
    return [min(w, PADDED_WIDTH) for w in widths]


def _table_lines(
    headers: Sequence[str], body: Iterable[Sequence[str]], widths: Sequence[int]
) -> Iterator[str]:
    for row in itertools.chain([list(headers)], body):
        # Pad by display width, not len(): 利用者名 is four characters but eight columns.
        pairs = zip(row, widths, strict=True)
        yield "  ".join(cell + " " * max(0, w - display_width(cell)) for cell, w in pairs).rstrip()
