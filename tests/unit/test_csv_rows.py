"""The CSV reading both imports share: the line and the words of each refusal."""

from __future__ import annotations

import pytest

from otpcore.csv_rows import read_rows
from otpcore.errors import ImportRefused, InvalidInput

BIG = "9" * 200_000  # over the csv module's field limit of 131,072 characters


def read(text: str) -> list[tuple[dict[str, str], int]]:
    """Rows of a file with columns a and b, each with its line; a is the key."""

    def parse(cells: dict[str, str], line: int) -> tuple[dict[str, str], int]:
        if cells["b"] == "bad":
            raise InvalidInput("b is bad")
        return cells, line

    return read_rows(
        text,
        "f.csv",
        columns=("a", "b"),
        check_header=lambda header: None if "a" in header else "header needs 'a'",
        parse=parse,
        key=lambda row: row[0]["a"],
        key_name="a",
    )


def refusal(text: str) -> str:
    with pytest.raises(ImportRefused) as caught:
        read(text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f.csv:1: empty file: a header row is required"),
        ("a,b,a\n", "f.csv:1: a column is named twice"),
        ("b\n", "f.csv:1: header needs 'a'"),
        ("a,b\n1,2\n3,4,5\n", "f.csv:3: more fields than columns: 3 where the header names 2"),
        ("a,b\n1,2\n\n3\n", "f.csv:4: fewer fields than columns: 1 where the header names 2"),
        ("a,b\n1,2\n3,bad\n", "f.csv:3: b is bad"),
        ("a,b\n1,2\n1,3\n", "f.csv:3: a 1 repeats line 2"),
        (
            f"a,b\n1,2\n3,4\n{BIG},5\n6,7\n",
            "f.csv:4: not valid CSV: field larger than field limit (131072)",
        ),
        (f'a,b\n"{BIG}",5\n', "f.csv:2: not valid CSV: field larger than field limit (131072)"),
        (f"{BIG},b\n", "f.csv:1: not valid CSV: field larger than field limit (131072)"),
    ],
)
def test_each_refusal_names_its_line_and_what_is_wrong(text: str, message: str) -> None:
    assert refusal(text) == message


def test_cells_reach_the_parser_as_written() -> None:
    # Line ends inside quotes are the cell's own, and spaces around a cell are kept: a
    # password must not be changed on its way in without anyone seeing it.
    text = 'a,b\r\n1,"x\r\ny"\r\n2, z \r\n'
    assert read(text) == [({"a": "1", "b": "x\r\ny"}, 2), ({"a": "2", "b": " z "}, 4)]


def test_a_byte_order_mark_and_blank_lines_are_not_rows() -> None:
    assert read("\ufeffa,b\n\n1,2\n\n") == [({"a": "1", "b": "2"}, 3)]
