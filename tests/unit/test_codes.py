"""Codes and serials as people type them: full-width (an IME left on) or in another script."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from otpcore.codes import is_code, read_code, read_serial

# Every decimal digit Unicode knows, in any script: what an OTP may be typed with.
DECIMAL_DIGITS = st.characters(categories=["Nd"])


def full_width(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def test_full_width_and_other_scripts_read_as_ascii() -> None:
    assert read_code("１２３４５６") == "123456"
    assert read_code("١٢٣٤٥٦") == "123456"  # Arabic-Indic
    assert read_code("१२३४५६") == "123456"  # Devanagari
    assert read_code("12３４56") == "123456"
    assert read_code("123456") == "123456"


def test_what_is_not_a_decimal_digit_is_no_code() -> None:
    # Superscripts and circled numbers pass str.isdigit() but are not digits one types.
    for text in ("", "12345a", "12 456", "²３４５６７", "①２３４５６", "一二三四五六", "½23456"):
        assert read_code(text) is None, text
        assert not is_code(text), text


@given(st.text(DECIMAL_DIGITS, min_size=1, max_size=12))
def test_any_decimal_digits_read_as_the_number_python_reads(text: str) -> None:
    code = read_code(text)
    assert code is not None
    assert is_code(text)
    assert code.isascii()
    assert len(code) == len(text)
    assert int(code) == int(text)  # int() reads every script's decimal digits on its own


@given(st.text(max_size=12))
def test_read_code_and_is_code_agree(text: str) -> None:
    assert (read_code(text) is not None) == is_code(text)


@given(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=16))
def test_a_serial_typed_full_width_is_the_ascii_serial(serial: str) -> None:
    assert read_serial(full_width(serial)) == serial
    assert read_serial(f"\u3000{serial} ") == serial  # the ideographic space is a space too
    assert read_serial(serial) == serial


def test_a_serial_typed_with_an_ime_dash_or_another_scripts_digits_is_the_ascii_serial() -> None:
    assert read_serial("２３４５ー６７８９") == "2345-6789"  # the long vowel mark of kana mode
    assert read_serial("TK−7a01") == "TK-7a01"  # the minus sign
    assert read_serial("٢٣٤٥٦٧٨٩") == "23456789"  # Arabic-Indic digits
    assert read_serial("シリアル") == "シリアル"  # nothing to read: no serial will match it
