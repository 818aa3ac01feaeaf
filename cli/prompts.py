"""Asking for secrets: without echo on a terminal, or one per line with ``--password-stdin``.

Whatever the source, the order of the questions is the same, so a script feeds the lines in
the order an operator would be prompted. A secret is never echoed, printed or logged.
"""

from __future__ import annotations

import getpass
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from otpcore.errors import InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


def password_stdin_option(command: F) -> F:
    """Add ``--password-stdin`` to a command asking for secrets (parameter ``password_stdin``)."""
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read each secret (password, OTP, serial) from one line of standard input, "
        "in the order they would be prompted, instead of prompting.",
    )(command)


class Secrets:
    """The source of the secrets one command asks for, in order."""

    def __init__(self, from_stdin: bool) -> None:
        self.from_stdin = from_stdin

    def ask(self, prompt: str, *, hidden: bool = True, repeat: str | None = None) -> str:
        """One answer; with ``repeat`` a person types it twice (a password being set)."""
        answer = self.ask_optional(prompt, hidden=hidden, repeat=repeat)
        if answer is None:
            raise InvalidInput(f"standard input ended before the answer to {prompt!r}")
        return answer

    def ask_optional(
        self, prompt: str, *, hidden: bool = True, repeat: str | None = None
    ) -> str | None:
        """One answer, or None when ``--password-stdin`` input has run out."""
        try:
            answer = self._answer(prompt, hidden=hidden, repeat=repeat)
            # Piped in a C.UTF-8 locale, stdin decodes with surrogateescape: no error yet.
            if answer is not None:
                answer.encode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            # Never the bytes themselves: they are a password, or most of one.
            raise InvalidInput(
                f"the answer to {prompt!r} is not UTF-8 text "
                "(is the terminal or the script set to another encoding?)"
            ) from None
        return answer

    def _answer(self, prompt: str, *, hidden: bool, repeat: str | None) -> str | None:
        if self.from_stdin:
            return self._read_line()
        # Typing a new password twice catches a typo a person cannot see; a pipe needs no
        # such check and would only have to repeat every line. The second prompt names what
        # to type again: a bare "Repeat for confirmation" after the login password was taken
        # for the confirmation password (確認用パスワード), which is another secret.
        confirm: str | bool = repeat if repeat is not None and sys.stdin.isatty() else False
        with warnings.catch_warnings():
            # With no terminal (cron, CI) getpass reads the pipe and says so in a line of its
            # own; its Python warning would add two more, a source path among them.
            warnings.simplefilter("ignore", getpass.GetPassWarning)
            value: str = click.prompt(
                prompt, hide_input=hidden, confirmation_prompt=confirm, type=str, err=True
            )
        return value

    def _read_line(self) -> str | None:
        # sys.stdin itself, as read at the time (a test runner replaces it): one stream for
        # every answer, so no line another reader buffered is lost. Bytes that are not
        # UTF-8 arrive as an error or as surrogates, and ask_optional refuses either.
        line = sys.stdin.readline()
        if not line:
            return None
        return line.removesuffix("\n").removesuffix("\r")
