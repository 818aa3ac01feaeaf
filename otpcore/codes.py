"""One-time codes and serial numbers as people type them.

A Japanese keyboard in full-width mode (an IME left on) sends ``１２３４５６`` for 123456, and a
keyboard of another script sends its own digits. Each is the same code to the person reading
it off the token; refusing it as malformed would count a failure on the token, which every
user sharing it pays for at the lockout threshold. Reading it as the ASCII code accepts no
code that was refused before under another spelling: there are still 10 ** digits of them.
"""

from __future__ import annotations

import unicodedata

# The full-width forms of printable ASCII ("！" to "～") sit at this distance from ASCII.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
# Dashes a Japanese IME or a word processor puts where a serial has "-": the long vowel marks
# (full and half width), hyphen, non-breaking hyphen, figure dash, en and em dash, minus.
_DASHES = dict.fromkeys(map(ord, "ーｰ‐‑‒–—−"), ord("-"))


def is_code(text: str) -> bool:
    """True if ``text`` is all decimal digits, in any script (and not empty)."""
    return text.isdecimal()


def read_code(text: str) -> str | None:
    """``text`` as ASCII digits when it is all decimal digits in any script, else None."""
    if text.isascii():
        return text if text.isdigit() else None
    if not text.isdecimal():
        return None
    return "".join(str(unicodedata.decimal(char)) for char in text)


def read_serial(text: str) -> str:
    """A typed serial number as ASCII where it was typed full-width, with another script's
    digits or another dash; surrounding spaces dropped."""
    serial = text.strip().translate(_FULL_WIDTH).translate(_DASHES)
    if serial.isascii():
        return serial
    # Inventory serials are printable ASCII: reading a digit of any script as its ASCII
    # digit can only find the serial that was meant.
    return "".join(read_code(char) or char for char in serial)
