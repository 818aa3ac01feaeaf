"""Reading the files an import is given: every failure names the file, in one line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.messages import say
from cli.output import Lang, echo_json
from otpcore.errors import ImportRefused, InvalidInput
from otpcore.views import Imported


def shown_path(path: Path) -> str:
    """The path as text to print and to audit: bytes that are not UTF-8 as ``\\xNN``.

    A file named on a Windows share in Shift_JIS keeps such bytes; as Python's surrogates
    they could be neither printed nor stored.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_import_file(path: Path) -> bytes:
    """The whole file, or InvalidInput naming it (missing, a directory, unreadable …)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidInput(f"{shown_path(path)}: cannot read: {reason}") from None


def import_text(data: bytes, path: Path) -> str:
    """A CSV file's text; UTF-8, with the byte order mark spreadsheets often write dropped."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        # Excel in Japan saves "CSV" as Shift_JIS unless told otherwise.
        message = f"not UTF-8 text (byte {exc.start}): save the file as CSV UTF-8"
        raise ImportRefused(shown_path(path), line, message) from None


def echo_imported(done: Imported, name: str, lang: Lang, as_json: bool, message: str) -> None:
    """Report an import: how many rows, and with ``--update`` how many of them were new."""
    if as_json:
        report: dict[str, object] = {"file": name, "imported": done.total, "added": done.added,
                                     "updated": done.updated}  # fmt: skip
        if done.unconfirmed:
            report["unconfirmed"] = list(done.unconfirmed)
        echo_json(report)
    else:
        # With --update the count alone hid whether anything was new.
        click.echo(say(lang, message, count=done.total, file=name, added=done.added,
                       updated=done.updated))  # fmt: skip
        if done.unconfirmed:
            # An import carries no confirmation password (SPEC §7): until one is set, these
            # users cannot approve an unlock or revoke, which an operator finds out then.
            click.echo(say(lang, "unconfirmed", logins=", ".join(done.unconfirmed)))
