"""Software tokens: a fresh random seed, its ``otpauth://`` URI and the QR code an app scans.

- Seed length follows RFC 4226 §4 and RFC 6238 §3 (a key as long as the HMAC output):
  20 bytes (160 bits) for SHA1, 32 for SHA256, 64 for SHA512.
- A serial, when none is given, is ``S`` and ten random decimal digits (``S0123456789``):
  typeable on a phone keypad during activation, and never confused with the all-digit
  serials of hardware tokens. Uniqueness is the inventory's job (the import refuses a serial
  already present; the caller draws again).
- The URI follows the Key URI format of Google Authenticator:
  ``otpauth://totp/ISSUER:SERIAL?secret=BASE32&issuer=ISSUER&algorithm=…&digits=…&period=…``,
  issuer and serial percent-encoded, the secret base32 without padding.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import segno

from otpcore.errors import AlreadyExists, InvalidInput
from otpcore.model import Algorithm, TokenKind
from otpcore.token_csv import TokenSpec, parse_digits, parse_period, parse_serial

SECRET_BYTES = {Algorithm.SHA1: 20, Algorithm.SHA256: 32, Algorithm.SHA512: 64}
SERIAL_PREFIX = "S"
SERIAL_DIGITS = 10
QR_BORDER = 4  # the quiet zone ISO/IEC 18004 asks for, in modules
PNG_SCALE = 8  # pixels per module

Random = Callable[[int], bytes]


def new_software_token(
    serial: str | None = None,
    *,
    algorithm: Algorithm = Algorithm.SHA1,
    digits: int = 6,
    period: int = 30,
    random: Random = os.urandom,
) -> TokenSpec:
    """A software token with a random seed, ready for ``Admin.import_tokens``."""
    secret = random(SECRET_BYTES[algorithm])
    if len(secret) != SECRET_BYTES[algorithm]:
        raise ValueError("the random source returned the wrong number of bytes")
    return TokenSpec(
        serial=parse_serial(serial) if serial is not None else new_serial(random),
        secret=secret,
        kind=TokenKind.SOFTWARE,
        algorithm=algorithm,
        digits=parse_digits(digits),
        period=parse_period(period),
    )


def new_serial(random: Random = os.urandom) -> str:
    """``S`` and ten uniformly random decimal digits."""
    space = 10**SERIAL_DIGITS
    limit = (2**40 // space) * space  # reject the top of the range: no modulo bias
    while True:
        value = int.from_bytes(random(5), "big")
        if value < limit:
            return f"{SERIAL_PREFIX}{value % space:0{SERIAL_DIGITS}d}"


def otpauth_uri(spec: TokenSpec, issuer: str) -> str:
    """The ``otpauth://totp/`` URI an authenticator app reads from the QR code."""
    if not issuer.strip():
        raise InvalidInput("the issuer must not be empty")
    if spec.secret is None:
        raise ValueError("a token to enrol needs its seed")
    name = quote(issuer, safe="")
    secret = base64.b32encode(spec.secret).decode("ascii").rstrip("=")
    return (
        f"otpauth://totp/{name}:{quote(spec.serial, safe='')}"
        f"?secret={secret}&issuer={name}&algorithm={spec.algorithm.value}"
        f"&digits={spec.digits}&period={spec.period}"
    )


# Half blocks: (top module dark, bottom module dark) -> character drawn in the dark colour.
_HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "\u2580",  # upper half block
    (False, True): "\u2584",  # lower half block
    (True, True): "\u2588",  # full block
}
_DARK_ON_LIGHT = "\x1b[30;107m"  # black ink on bright white paper, whatever the theme
_RESET = "\x1b[0m"


def qr_matrix(uri: str) -> list[list[bool]]:
    """The QR code's modules (True = dark), quiet zone included."""
    code = segno.make_qr(uri, error="m")
    return [[bool(bit) for bit in row] for row in code.matrix_iter(scale=1, border=QR_BORDER)]


def qr_terminal(uri: str, *, colour: bool = True) -> str:
    """The QR code as text: two modules per character cell (half blocks), one line per pair
    of rows. With ``colour`` every line sets black-on-white itself, so the code scans on a
    dark terminal theme as well as on a light one; without it, the blocks are the dark
    modules, for a dark-on-light terminal or paper."""
    matrix = qr_matrix(uri)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    lines = []
    for top, bottom in zip(matrix[::2], matrix[1::2], strict=True):
        cells = "".join(_HALF_BLOCKS[pair] for pair in zip(top, bottom, strict=True))
        lines.append(f"{_DARK_ON_LIGHT}{cells}{_RESET}" if colour else cells)
    return "\n".join(lines) + "\n"


def qr_png(uri: str, path: str | os.PathLike[str]) -> None:
    """Write the QR code as a PNG, mode 0600 (it holds the seed); never overwrites a file."""
    buffer = io.BytesIO()
    segno.make_qr(uri, error="m").save(buffer, kind="png", scale=PNG_SCALE, border=QR_BORDER)
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(f"{target}: file exists; the QR code was not written") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(buffer.getvalue())
            # On disk before the token is committed: after a power cut the inventory must not
            # hold a token whose only picture of its seed was lost.
            out.flush()
            os.fsync(out.fileno())
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except BaseException:
        target.unlink(missing_ok=True)  # no half-written picture of a seed left behind
        raise
