"""Checks of command-line values that click's own types do not make."""

from __future__ import annotations

from typing import TypeVar

import click

Value = TypeVar("Value", str, tuple[str, ...], None)


def utf8_text(ctx: click.Context, param: click.Parameter, value: Value) -> Value:
    """A login, serial or name as given, refused unless it is UTF-8 text.

    An argument typed in another encoding (a terminal or a script set to Latin-1 or Shift_JIS)
    reaches Python with lone surrogates in place of its bytes: refused as a usage error naming
    the argument, not left to fail later as an encoding error.
    """
    for text in value if isinstance(value, tuple) else (value,):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError:
            message = "is not UTF-8 text (is the terminal set to another encoding?)"
            raise click.BadParameter(message, ctx, param) from None
    return value
