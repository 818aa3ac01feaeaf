"""``otpctl token …``: the inventory — import seed files, enrol software tokens, list, disable
and enable tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.context import CliContext
from cli.files import echo_imported, import_text, read_import_file, shown_path
from cli.messages import say
from cli.output import Lang, echo_json, echo_json_list, echo_tokens, output_options
from cli.params import utf8_text
from cli.progress import progress_bar
from cli.prompts import Secrets, password_stdin_option
from otpcore.admin import Admin
from otpcore.enroll import new_software_token, otpauth_uri, qr_png, qr_terminal
from otpcore.errors import AlreadyExists, InvalidInput
from otpcore.model import Algorithm
from otpcore.pskc_import import detect_format, read_pskc
from otpcore.token_csv import TokenSpec, read_token_csv

pass_cli = click.make_pass_decorator(CliContext)

FORMATS = ("csv", "pskc")
SERIAL_DRAWS = 5  # a generated serial collides once in 10^10 / inventory size; five is plenty


def parse_psk(value: str) -> bytes:
    """The --psk value: the pre-shared key in hex. The error never quotes it (a secret)."""
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise InvalidInput(
            "--psk: not a hexadecimal key (give the pre-shared key as hex digits, "
            "e.g. 32 for AES-128)"
        ) from None
    if not key:
        raise InvalidInput("--psk: the pre-shared key is empty")
    return key


@click.group("token")
def token() -> None:
    """The token inventory, keyed by serial number."""


@token.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Seed file format (default: detected from the content: XML is PSKC, else CSV).",
)
@click.option(
    "--psk",
    metavar="HEX",
    default=None,
    help="Pre-shared key (hex) of an encrypted PSKC file; '-' prompts for it without echo "
    "(an argument is seen by every user of the host in the process list).",
)
@click.option(
    "--pskc-password",
    is_flag=True,
    help="Prompt for the password of a PSKC file encrypted with a PBKDF2 password.",
)
@click.option(
    "--update",
    is_flag=True,
    help="Update tokens already present: only what the file states (a CSV may then leave out "
    "the seeds, which the tokens keep).",
)
@password_stdin_option
@output_options
@pass_cli
def import_tokens(
    obj: CliContext,
    file: Path,
    file_format: str | None,
    psk: str | None,
    pskc_password: bool,
    update: bool,
    password_stdin: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Put the tokens of a seed file (CSV or PSKC) in the inventory: the whole file, or nothing."""
    name = shown_path(file)
    if psk is not None and pskc_password:
        raise InvalidInput("give either --psk or --pskc-password, not both")
    admin = obj.admin()  # a database problem shows before anyone types a password in vain
    data = read_import_file(file)
    chosen = file_format or detect_format(data)
    if chosen == "csv":
        # Refused before any prompt: asked for a key, an operator would go and find one for a
        # file that has none to decrypt.
        if psk is not None or pskc_password:
            given = "--psk" if psk is not None else "--pskc-password"
            how = "given --format csv" if file_format else "its content is not XML"
            raise InvalidInput(
                f"{name}: {given} applies only to PSKC files; this one is read as CSV ({how})"
            )
        specs = read_token_csv(import_text(data, file), name, update=update)
    else:
        secrets = Secrets(password_stdin)
        if psk == "-":
            psk = secrets.ask(say(lang, "prompt_psk", file=name)).strip()
        key = parse_psk(psk) if psk is not None else None
        password = None
        if pskc_password:
            password = secrets.ask(say(lang, "prompt_pskc_password", file=name))
        with progress_bar(say(lang, "progress_pskc")) as progress:
            specs = read_pskc(data, name, psk=key, password=password, progress=progress)
    with progress_bar(say(lang, "progress_tokens")) as progress:
        done = admin.import_tokens(specs, update_existing=update, progress=progress, source=name)
    echo_imported(done, name, lang, as_json, "tokens_imported" if not update else "tokens_updated")


@token.command("enroll-soft")
@click.option(
    "--serial",
    callback=utf8_text,
    default=None,
    metavar="SERIAL",
    help="Serial number (default: S and ten random digits).",
)
@click.option(
    "--qr-png",
    "png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the QR code to this PNG file (mode 0600; an existing file is refused).",
)
@click.option(
    "--algorithm",
    type=click.Choice([a.value for a in Algorithm]),
    default=Algorithm.SHA1.value,
    show_default=True,
    help="HMAC hash (some authenticator apps read only SHA1).",
)
@click.option(
    "--digits", type=click.Choice(["6", "8"]), default="6", show_default=True, help="Code length."
)
@click.option(
    "--period",
    type=click.IntRange(10, 300),
    default=30,
    show_default=True,
    help="Time step in seconds.",
)
@output_options
@pass_cli
def enroll_soft(
    obj: CliContext,
    serial: str | None,
    png: Path | None,
    algorithm: str,
    digits: str,
    period: int,
    as_json: bool,
    lang: Lang,
) -> None:
    """Create a software token: prints its serial, otpauth:// URI and a QR code to scan.

    The URI and the QR code hold the token's secret: show them only to the user enrolling.
    The user then activates the token with its serial and a code, as a hardware token.
    """
    admin = obj.admin()
    issuer = obj.settings().tokens.issuer
    if png is not None and png.exists():  # refused before a token is created in vain
        raise AlreadyExists(f"{png}: file exists; the QR code was not written")
    spec, uri = _enrol(admin, issuer, serial, png, Algorithm(algorithm), int(digits), period)
    if as_json:
        echo_json(
            {
                "serial": spec.serial,
                "uri": uri,
                "issuer": issuer,
                "algorithm": spec.algorithm.value,
                "digits": spec.digits,
                "period": spec.period,
                "qr_png": str(png) if png is not None else None,
            }
        )
        return
    click.echo(say(lang, "soft_token_serial", serial=spec.serial))
    click.echo(say(lang, "soft_token_uri", uri=uri))
    if png is not None:
        click.echo(say(lang, "soft_token_png", file=png))
    # Colour (black on white, whatever the terminal's theme) only for a terminal: a file or
    # a pipe gets the plain blocks, without escape sequences.
    click.echo(qr_terminal(uri, colour=sys.stdout.isatty()), nl=False)


def _enrol(
    admin: Admin,
    issuer: str,
    serial: str | None,
    png: Path | None,
    algorithm: Algorithm,
    digits: int,
    period: int,
) -> tuple[TokenSpec, str]:
    """Put a new software token in the inventory (and its PNG on disk): both, or neither."""
    for _ in range(SERIAL_DRAWS):
        spec = new_software_token(serial, algorithm=algorithm, digits=digits, period=period)
        uri = otpauth_uri(spec, issuer)
        # The PNG first, then the token, so that a failure of either leaves neither: a file
        # we created can be removed, a token in the inventory cannot.
        if png is not None:
            _write_png(uri, png)
        try:
            # Named in the audit: restoring a backup from before, the user must enroll again.
            admin.import_tokens([spec], label="software token enrolled (token enroll-soft)")
        except AlreadyExists:
            _remove(png)
            if serial is not None:
                raise AlreadyExists(f"serial {serial} is already in the inventory") from None
            continue  # a generated serial collided: draw another
        except BaseException:
            _remove(png)
            raise
        return spec, uri
    raise AlreadyExists(f"no free serial after {SERIAL_DRAWS} random draws; give --serial")


def _write_png(uri: str, png: Path) -> None:
    try:
        qr_png(uri, png)
    except OSError as exc:
        raise InvalidInput(f"{png}: cannot write the QR code: {exc.strerror}") from None


def _remove(png: Path | None) -> None:
    if png is not None:
        png.unlink(missing_ok=True)


@token.command("list")
@click.option(
    "--expiring-within",
    "days",
    type=click.IntRange(min=0, max=36_500),  # a century; far beyond, the date overflows
    default=None,
    metavar="DAYS",
    help="Only tokens whose expiry falls within DAYS days (or has passed).",
)
@output_options
@pass_cli
def list_tokens(obj: CliContext, days: int | None, as_json: bool, lang: Lang) -> None:
    """The inventory: serial, kind, algorithm, digits, period, expiry, users, state."""
    admin = obj.admin()
    if as_json:
        echo_json_list(item.as_json() for item in admin.each_token(days))
    else:
        echo_tokens(admin.each_token(days), lang)


@token.command("disable")
@click.argument("serial", callback=utf8_text)
@output_options
@pass_cli
def disable(obj: CliContext, serial: str, as_json: bool, lang: Lang) -> None:
    """Block a token in the inventory (e.g. reported stolen): it no longer authenticates."""
    _set_disabled(obj, serial, True, as_json, lang)


@token.command("enable")
@click.argument("serial", callback=utf8_text)
@output_options
@pass_cli
def enable(obj: CliContext, serial: str, as_json: bool, lang: Lang) -> None:
    """Lift the block of a disabled token."""
    _set_disabled(obj, serial, False, as_json, lang)


def _set_disabled(obj: CliContext, serial: str, disabled: bool, as_json: bool, lang: Lang) -> None:
    listing, changed = obj.admin().set_disabled(serial, disabled)
    if as_json:
        echo_json(listing.as_json())
    else:
        message = "token_disabled" if disabled else "token_enabled"
        click.echo(say(lang, message if changed else f"{message}_already", serial=serial))
