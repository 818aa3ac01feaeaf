"""Token seed CSV (SPEC §7): parsing and validation, one ``TokenSpec`` per row."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Generic, TypeVar

from otpcore.csv_rows import read_rows
from otpcore.errors import InvalidInput
from otpcore.model import Algorithm, TokenKind
from otpcore.totp import hmac_key

Owner = TypeVar("Owner")
MIN_SECRET_BYTES = 16  # RFC 4226 §4 R6: at least 128 bits
MAX_SECRET_BYTES = 128
DEFAULT_PERIOD = {TokenKind.HARDWARE: 60, TokenKind.SOFTWARE: 30}
# What TokenSpec.given may name: the settings a seed file states or leaves out.
STATED_SETTINGS = frozenset({"kind", "algorithm", "digits", "period", "expires", "drift"})
_SETTINGS = ("kind", "algorithm", "digits", "period", "expires")  # the CSV's columns of them
_COLUMNS = ("serial", "secret", "secret_base32", *_SETTINGS)  # in the order errors list them


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """A token to put in the inventory, as read from a seed file."""

    serial: str
    # None: an update that keeps the seed the inventory holds (a CSV row without one).
    secret: bytes | None = field(repr=False)
    kind: TokenKind = TokenKind.HARDWARE
    algorithm: Algorithm = Algorithm.SHA1
    digits: int = 6
    period: int = 60
    expires: datetime | None = None
    line: int | None = None
    drift: int = 0  # steps the token's clock runs ahead of the server's (negative: behind)
    # The settings the file states (a CSV may leave columns out or cells empty); None: all.
    # An update changes only these: a re-delivered file without an expires column must not
    # clear the expiry of a token that has expired, nor reset digits or period to defaults.
    given: frozenset[str] | None = None


# Anything longer than this is withheld whatever it is made of.
_SHOWN_UP_TO = 25
# Seeds this product refuses as too short are still live seeds elsewhere: an authenticator
# app's usual 80 bits are 16 characters of base32 or 20 of hex. So a value of this many
# characters or more that hex or base32 could spell (letters, digits, padding, the spaces apps
# group it with) is withheld too.
_SEED_LIKE_FROM = 10
_SEED_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789= ")


def shown(value: str) -> str:
    """A cell's value for an error message, unless it could be a seed in the wrong column.

    A row with a comma too many or too few shifts the seed into a neighbouring column, whose
    error would otherwise print it on the operator's terminal and into whatever captures that.
    """
    length = len(value)
    if length > _SHOWN_UP_TO or (length >= _SEED_LIKE_FROM and _SEED_ALPHABET.issuperset(value)):
        return f"({length} characters, not shown: a seed in the wrong column?)"
    return repr(value)


def parse_serial(value: str) -> str:
    """A serial: 1 to 64 printable ASCII characters without spaces or commas."""
    serial = value.strip()
    if not serial or len(serial) > 64:
        raise InvalidInput("serial must be 1 to 64 characters")
    if not serial.isascii() or not serial.isprintable() or any(c in serial for c in " ,"):
        raise InvalidInput(
            f"serial {shown(serial)} has a space, a comma or a character other than printable ASCII"
        )
    return serial


def parse_algorithm(value: str) -> Algorithm:
    """SHA1, SHA256 or SHA512 (case and a dash are forgiven: 'sha-256')."""
    name = value.strip().upper().replace("-", "")
    try:
        return Algorithm(name)
    except ValueError:
        raise InvalidInput(f"unknown algorithm {shown(value)} (SHA1, SHA256 or SHA512)") from None


def parse_digits(value: str | int) -> int:
    """6 or 8."""
    text = str(value).strip()
    if text not in ("6", "8"):
        raise InvalidInput(f"digits must be 6 or 8, not {shown(text)}")
    return int(text)


def parse_period(value: str | int) -> int:
    """A time step of 10 to 300 seconds."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 10 <= int(text) <= 300:
        raise InvalidInput(
            f"period must be a whole number of seconds from 10 to 300, not {shown(text)}"
        )
    return int(text)


def parse_expiry(value: str) -> datetime:
    """YYYY-MM-DD (the start of that day, UTC) or an ISO 8601 instant (UTC if no offset)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        instant = datetime.fromisoformat(text)
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"expires {shown(text)} is not YYYY-MM-DD or ISO 8601") from None


def parse_secret(hex_value: str | None, base32_value: str | None) -> bytes:
    """The seed from a hex or a base32 column (both may be given if they agree)."""
    if not hex_value and not base32_value:
        raise InvalidInput("no secret (a 'secret' or 'secret_base32' value is required)")
    from_hex = _from_hex(hex_value) if hex_value else None
    from_base32 = _from_base32(base32_value) if base32_value else None
    # Which of two different seeds the vendor meant is not ours to guess.
    both = from_hex is not None and from_base32 is not None
    if both and not hmac.compare_digest(from_hex or b"", from_base32 or b""):
        raise InvalidInput("secret and secret_base32 are different seeds; give one")
    secret = from_hex if from_hex is not None else from_base32
    return check_secret(secret or b"")


def _from_hex(value: str) -> bytes:
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise InvalidInput("secret is not hexadecimal") from None


def _from_base32(value: str) -> bytes:
    text = value.strip().replace(" ", "").upper()
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput("secret_base32 is not base32") from None


def check_secret(secret: bytes) -> bytes:
    """A seed of acceptable length that is not a placeholder (one byte repeated, or mostly
    zero bytes)."""
    if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
        raise InvalidInput(
            f"secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(secret)}"
        )
    # All zeros (or all 0xFF) is what a file holds where a seed failed to be written or
    # decrypted: every such token would show codes anyone can compute. Trailing zero bytes
    # change no code (HMAC pads the key with them), so they do not make one a seed.
    stripped = secret.rstrip(b"\0")
    if len(set(stripped)) <= 1:
        raise InvalidInput("secret is one byte repeated: a placeholder, not a seed")
    # A few bytes among zeros is a seed written in part. A random 16-byte seed has five zero
    # bytes about once in 250 million (refusing any zero byte would refuse one in 16).
    if len(secret) - secret.count(0) < MIN_SECRET_BYTES - 4:
        raise InvalidInput("secret is mostly zero bytes: a placeholder, not a seed")
    return secret


def seed_forms(secret: bytes, algorithm: Algorithm) -> frozenset[bytes]:
    """The forms two seeds are compared in: as stored and as HMAC keys, without zero padding."""
    return frozenset({secret.rstrip(b"\0"), hmac_key(secret, algorithm)})


class DistinctSeeds(Generic[Owner]):
    """The seeds of one file so far, to find two tokens that would show the same codes.

    Two serials with one seed show the same codes: either token opens the other's logins. No
    vendor ships that on purpose. Seeds are compared as HMAC uses them (``hmac_key``): a seed
    and the same seed with zero bytes appended are one.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, Owner] = {}

    def earlier(self, spec: TokenSpec, owner: Owner) -> Owner | None:
        """The owner of an earlier token with ``spec``'s codes; else records ``owner``, None."""
        if spec.secret is None:
            return None  # keeps its seed, which was compared when it came in
        forms = seed_forms(spec.secret, spec.algorithm)
        for form in forms:
            if form in self._seen:
                return self._seen[form]
        for form in forms:
            self._seen[form] = owner
        return None


def parse_kind(value: str) -> TokenKind:
    """hardware or software."""
    try:
        return TokenKind(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"kind must be hardware or software, not {shown(value)}") from None


def read_token_csv(text: str, source: str, *, update: bool = False) -> list[TokenSpec]:
    """Every row of a token CSV, or ImportRefused naming the file and line of the first bad one.

    With ``update``, a row may leave out the seed (no secret column, or an empty cell): the
    token keeps the one it has, and only the settings the row states change.
    """
    seeds: DistinctSeeds[TokenSpec] = DistinctSeeds()

    def seed_of_its_own(spec: TokenSpec) -> None:
        first = seeds.earlier(spec, spec)
        if first is not None:
            raise InvalidInput(
                f"the secret of line {first.line} (serial {first.serial}) again: "
                "every token needs a seed of its own"
            )

    return read_rows(
        text,
        source,
        columns=_COLUMNS,
        check_header=_missing_for_update if update else _missing,
        parse=_update_row if update else _row,
        key=lambda spec: spec.serial,
        key_name="serial",
        check=seed_of_its_own,
    )


def _missing(header: set[str]) -> str | None:
    if "serial" not in header or not {"secret", "secret_base32"} & header:
        return "header needs 'serial' and 'secret' (or 'secret_base32')"
    return None


def _missing_for_update(header: set[str]) -> str | None:
    if "serial" not in header:
        return "header needs 'serial'"
    if header <= {"serial"}:
        return "header names nothing to update besides 'serial'"
    return None


def _update_row(cells: dict[str, str], line: int) -> TokenSpec:
    return _row(cells, line, seed_optional=True)


def _row(cells: dict[str, str], line: int, *, seed_optional: bool = False) -> TokenSpec:
    values = {name: value.strip() for name, value in cells.items()}
    kind = parse_kind(values["kind"]) if values.get("kind") else TokenKind.HARDWARE
    algorithm = values.get("algorithm")
    hex_seed, base32_seed = values.get("secret"), values.get("secret_base32")
    keeps_seed = seed_optional and not hex_seed and not base32_seed
    return TokenSpec(
        serial=parse_serial(values.get("serial", "")),
        secret=None if keeps_seed else parse_secret(hex_seed, base32_seed),
        kind=kind,
        algorithm=parse_algorithm(algorithm) if algorithm else Algorithm.SHA1,
        digits=parse_digits(values["digits"]) if values.get("digits") else 6,
        period=parse_period(values["period"]) if values.get("period") else DEFAULT_PERIOD[kind],
        expires=parse_expiry(values["expires"]) if values.get("expires") else None,
        line=line,
        given=frozenset(name for name in _SETTINGS if values.get(name)),
    )


def serials_of(specs: Iterable[TokenSpec]) -> list[str]:
    """The serials of some specs, in order."""
    return [spec.serial for spec in specs]
