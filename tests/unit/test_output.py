"""Listings printed a row at a time read exactly as the same listing printed whole."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.output import echo_json, echo_json_list
from cli.tables import echo_table, render_table

# Cells as logins, names and audit details may hold them: CJK (two columns wide), tabs, line
# breaks and other controls (printed escaped), and cells past the padded width.
CELLS = st.text(
    st.sampled_from(["a", "Z", "7", " ", "-", "山", "ｱ", "\t", "\n", "\x1b", "\u202e", "é"]),
    max_size=70,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def printed(write: Callable[[], None]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        write()
    return out.getvalue()


@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.lists(CELLS, min_size=n, max_size=n),
            st.lists(st.lists(CELLS, min_size=n, max_size=n), max_size=12),
        )
    )
)
def test_a_table_printed_row_by_row_is_the_table_printed_whole(
    table: tuple[list[str], list[list[str]]],
) -> None:
    headers, rows = table
    assert printed(lambda: echo_table(headers, iter(rows))) == render_table(headers, rows) + "\n"


def test_a_table_larger_than_a_compressed_chunk_comes_back_whole_and_in_order() -> None:
    rows = [[f"u{index:06d}", "利用者" * (index % 5), str(index)] for index in range(30_000)]
    headers = ["login", "name", "n"]
    assert printed(lambda: echo_table(headers, iter(rows))) == render_table(headers, rows) + "\n"


@settings(max_examples=200)
@given(st.lists(JSON_VALUES, max_size=5))
def test_a_json_list_printed_item_by_item_is_the_list_printed_whole(items: list[object]) -> None:
    streamed = printed(lambda: echo_json_list(iter(items)))
    assert streamed == printed(lambda: echo_json(items))
    assert json.loads(streamed) == items
