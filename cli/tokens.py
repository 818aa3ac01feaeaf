"""``otpctl token …``: the inventory — import seed files, list, disable and enable tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from cli.context import CliContext
from cli.messages import say
from cli.output import Lang, echo_json, output_options, token_table
from otpcore.errors import AlreadyExists, ImportRefused, InvalidInput
from otpcore.token_csv import TokenSpec, read_token_csv

pass_cli = click.make_pass_decorator(CliContext)

TokenReader = Callable[[Path], list[TokenSpec]]
"""Reads a whole seed file into specs, or raises ImportRefused naming the file and line."""


def read_csv_file(path: Path) -> list[TokenSpec]:
    """A token CSV (SPEC §7)."""
    return read_token_csv(_text(path), str(path))


def read_pskc_file(path: Path) -> list[TokenSpec]:
    """A PSKC file (RFC 6030): not supported yet."""
    raise InvalidInput(
        f"{path}: PSKC import is not supported yet; convert the seeds to CSV "
        "(serial,secret,algorithm,digits,period,expires) and use --format csv"
    )


# One reader per --format; a new format is one function and one entry here.
READERS: dict[str, TokenReader] = {"csv": read_csv_file, "pskc": read_pskc_file}
_PSKC_SUFFIXES = {".pskc", ".xml"}


def _text(path: Path) -> str:
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(str(path), None, "not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None


def guess_format(path: Path) -> str:
    """The --format a file's name suggests: pskc for .pskc/.xml, else csv."""
    return "pskc" if path.suffix.lower() in _PSKC_SUFFIXES else "csv"


@click.group("token")
def token() -> None:
    """The token inventory, keyed by serial number."""


@token.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(sorted(READERS)),
    default=None,
    help="Seed file format (default: pskc for .pskc/.xml files, else csv).",
)
@click.option("--update", is_flag=True, help="Replace tokens whose serial is already present.")
@output_options
@pass_cli
def import_tokens(
    obj: CliContext,
    file: Path,
    file_format: str | None,
    update: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Put the tokens of a seed file in the inventory: the whole file, or nothing."""
    admin = obj.admin()
    specs = READERS[file_format or guess_format(file)](file)
    try:
        count = admin.import_tokens(specs, update_existing=update)
    except AlreadyExists as exc:
        raise AlreadyExists(f"{file}: {exc}") from None
    if as_json:
        echo_json({"file": str(file), "imported": count})
    else:
        click.echo(say(lang, "tokens_imported", count=count, file=file))


@token.command("list")
@click.option(
    "--expiring-within",
    "days",
    type=click.IntRange(min=0),
    default=None,
    metavar="DAYS",
    help="Only tokens whose expiry falls within DAYS days (or has passed).",
)
@output_options
@pass_cli
def list_tokens(obj: CliContext, days: int | None, as_json: bool, lang: Lang) -> None:
    """The inventory: serial, kind, algorithm, digits, period, expiry, users, state."""
    tokens = obj.admin().tokens(days)
    if as_json:
        echo_json([item.as_json() for item in tokens])
    else:
        click.echo(token_table(tokens, lang))


@token.command("disable")
@click.argument("serial")
@output_options
@pass_cli
def disable(obj: CliContext, serial: str, as_json: bool, lang: Lang) -> None:
    """Block a token in the inventory (e.g. reported stolen): it no longer authenticates."""
    _set_disabled(obj, serial, True, as_json, lang)


@token.command("enable")
@click.argument("serial")
@output_options
@pass_cli
def enable(obj: CliContext, serial: str, as_json: bool, lang: Lang) -> None:
    """Lift the block of a disabled token."""
    _set_disabled(obj, serial, False, as_json, lang)


def _set_disabled(obj: CliContext, serial: str, disabled: bool, as_json: bool, lang: Lang) -> None:
    listing = obj.admin().set_disabled(serial, disabled)
    if as_json:
        echo_json(listing.as_json())
    else:
        click.echo(say(lang, "token_disabled" if disabled else "token_enabled", serial=serial))
