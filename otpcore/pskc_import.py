"""PSKC seed files (RFC 6030): TOTP keys to ``TokenSpec``, or one clear refusal.

``pskc_reader`` reads the file into records and ``pskc_crypto`` decrypts; this module decides
what a bank may import from them.

Rules, where RFC 6030 leaves a choice to the recipient:

- Only TOTP keys import. An HOTP key (or any other algorithm) refuses the whole file with an
  error naming the key. A PIN key (``…:pin``) that a TOTP key's PINPolicy names is skipped:
  the device checks the PIN itself (PINUsageMode ``Local``; any other mode is refused).
- Serial: DeviceInfo ``SerialNo``; when a file has none, the key's ``Id`` (vendors that omit
  SerialNo put the printed serial there). Two keys with one serial refuse the file.
- Hash: the key's ``AlgorithmParameters/Suite`` (``HMAC-SHA256`` …), SHA1 when absent.
  Digits: ``ResponseFormat Length`` (6 or 8, DECIMAL, no check digit), 6 when absent.
  Period: ``TimeInterval``; when absent, the hardware default of SPEC §2 (60 s, as for a CSV
  row), not RFC 6238's 30: PSKC keys import as hardware tokens.
- ``Time`` must be 0 (T0 = the Unix epoch, RFC 6238). ``TimeDrift`` (RFC 6030 §4.3.3: the
  intervals by which a validation server found the device clock to have drifted) is recorded
  as the token's drift, with the same sign (the token shows step ``server step + drift``), for
  the operator: it is not applied, the window is always around the server's time (SPEC §3).
  A drift of more than a day's worth of intervals is refused as implausible (a crystal loses
  minutes a year; a day means a wrong unit or a broken token).
- Expiry: the earlier of DeviceInfo ``ExpiryDate`` and the key's Policy ``ExpiryDate``;
  a time without a zone is UTC (RFC 6030 §4.3.3 says UTC). Start dates are ignored: the
  bank's service start date is per user (``user issue --start``).
- A Policy with rules the reader does not know, a KeyUsage without ``OTP`` or a
  ``NumberOfTransactions`` limit refuses the key: the server could not honour it.
- Protection: a pre-shared key (bytes) or a password (PBKDF2), never both. A key or password
  given for a file that is not encrypted is refused too (it means the wrong file). PBKDF2's
  iteration count and key length are bounded before anything is derived. Every encrypted
  value's MAC is checked (over IV and ciphertext, RFC 6030 §6.1.1) and the value decrypted
  before anything is returned; a CBC value without a MAC is refused (§6.1.1 requires one),
  an empty ``<ValueMAC>`` too. A clear secret beside encrypted ones is refused.
- The XML is checked with expat first: a syntax error is reported with its line, and a
  DOCTYPE (entity expansion) is refused, as no PSKC file needs one. An XML signature
  (``ds:Signature``) is not verified: a seed file's integrity here is its MAC.

Errors are ``ImportRefused(file, line, message)``: the line is that of the ``<Key>`` element
when the error is about a key. Messages name keys and serials, never a secret.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from xml.etree import ElementTree

from otpcore.errors import ImportRefused, InvalidInput
from otpcore.model import Algorithm, TokenKind
from otpcore.progress import Progress, Ticker
from otpcore.pskc_crypto import (
    DecryptionFailed,
    Decryptor,
    DerivationFailed,
    Encrypted,
)
from otpcore.pskc_reader import Container, KeyRecord, MalformedPskc, read_document
from otpcore.pskc_scan import Scan, scan_pskc
from otpcore.token_csv import (
    DEFAULT_PERIOD,
    DistinctSeeds,
    TokenSpec,
    check_secret,
    parse_algorithm,
    parse_digits,
    parse_period,
    parse_serial,
)

TOTP_DEFAULT_DIGITS = 6
MAX_DRIFT_SECONDS = 86_400  # |TimeDrift| x TimeInterval beyond a day is refused


def detect_format(data: bytes) -> Literal["csv", "pskc"]:
    """'pskc' for an XML document (a PSKC ``KeyContainer`` or anything else starting with '<',
    so that the PSKC reader explains what is wrong with it), else 'csv'."""
    head = data.lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return "pskc"
    # UTF-16 XML (rare, but XML allows it): a '<' after a byte order mark.
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") and b"<" in head[:8]:
        return "pskc"
    return "csv"


def read_pskc(
    data: bytes,
    source: str,
    *,
    psk: bytes | None = None,
    password: str | None = None,
    progress: Progress | None = None,
) -> list[TokenSpec]:
    """The TOTP keys of a PSKC file, decrypted and checked; ImportRefused for anything else.

    ``progress`` counts one unit per key package parsed and one per key element checked: the
    parse and the decryption are nearly all the time a large file takes.
    """
    if psk is not None and password is not None:
        raise InvalidInput("give either a pre-shared key or a PSKC password, not both")
    with _collector_paused():
        scan = scan_pskc(data, source)
        ticker = Ticker(progress, len(scan.packages) + len(scan.key_lines))
        container = _parse(data, source, ticker, scan)
        keys = container.keys
        if not keys:
            raise ImportRefused(source, None, "the PSKC file holds no keys")
        lines = scan.key_lines if len(scan.key_lines) == len(keys) else [None] * len(keys)
        located = [_Located(key, line) for key, line in zip(keys, lines, strict=True)]
        wanted = _select(located, source)
        decryptor = _unlock(container, wanted, source, psk=psk, password=password)
        specs: list[TokenSpec] = []
        serials: dict[str, _Located] = {}
        seeds: DistinctSeeds[_Located] = DistinctSeeds()
        for item in wanted:
            spec = _spec(item, source, decryptor)
            # Checked key by key, so that the first bad key in the file is the one named.
            _check_unique(spec, item, serials, seeds, source)
            specs.append(spec)
            ticker.advance()
        if ticker.done < ticker.total:  # PIN keys are skipped, not checked: end at the total
            ticker.advance(ticker.total - ticker.done)
    return specs


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file's millions of objects are built: they
    all stay alive until the end anyway, and the collector's repeated passes over them made a
    100,000-key file take twice as long. Resumed (if it was running) however the block ends."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def _parse(data: bytes, source: str, ticker: Ticker, scan: Scan) -> Container:
    """The file's records, or ImportRefused naming the line of the key package at fault."""
    try:
        # scan_pskc refused any DOCTYPE, so there are no entities to expand: safe to parse.
        return read_document(data, ticker.advance)
    except ElementTree.ParseError as exc:  # expat accepted it: only a second opinion
        raise ImportRefused(source, None, f"not a valid PSKC file: {exc}") from None
    except MalformedPskc as exc:
        # A value inside a key package (a length, an interval) is named by its key's line, as
        # a bad CSV row is by its own; the rest of the file has no line to give.
        line = scan.package_line(exc.package) if exc.package is not None else None
        raise ImportRefused(source, line, f"not a valid PSKC file: {exc.detail}") from None


# Which keys to import


@dataclass(frozen=True, slots=True)
class _Located:
    key: KeyRecord
    line: int | None

    @property
    def label(self) -> str:
        serial = self.key.serial
        name = f"key {self.key.id}" if self.key.id else "a key without an Id"
        return f"{name} (serial {serial})" if serial and serial != self.key.id else name


def _algorithm_name(uri: str | None) -> str:
    """The profile name at the end of an algorithm URI: 'totp', 'hotp', 'pin', …"""
    if not uri:
        return ""
    return uri.strip().replace("#", ":").rsplit(":", 1)[-1].lower()


def _select(located: Sequence[_Located], source: str) -> list[_Located]:
    """The TOTP keys; refuses the file on the first key that is neither TOTP nor its PIN."""
    pin_ids = {item.key.policy.pin_key_id for item in located if item.key.policy.pin_key_id}
    wanted: list[_Located] = []
    for item in located:
        name = _algorithm_name(item.key.algorithm)
        if name == "totp":
            wanted.append(item)
        elif name == "pin" and item.key.id in pin_ids:
            continue
        elif name == "hotp":
            raise _refuse(
                source,
                item,
                "HOTP (event-based) keys are not supported; only TOTP (time-based) keys import",
            )
        elif not name:
            raise _refuse(source, item, "the key names no algorithm; only TOTP keys import")
        else:
            raise _refuse(
                source, item, f"algorithm {item.key.algorithm!r} is not supported; only TOTP"
            )
    return wanted


def _refuse(source: str, item: _Located, message: str) -> ImportRefused:
    return ImportRefused(source, item.line, f"{item.label}: {message}")


# Decryption and MAC


def _unlock(
    container: Container,
    wanted: Sequence[_Located],
    source: str,
    *,
    psk: bytes | None,
    password: str | None,
) -> Decryptor | None:
    """The decryptor under the pre-shared or derived key, None for a file without encrypted
    keys; refuses missing, needless or MAC-less protection."""
    encrypted = [item for item in wanted if item.key.encrypted]
    if not encrypted:
        if psk is not None or password is not None:
            what = "pre-shared key" if psk is not None else "password"
            raise ImportRefused(
                source, None, f"a {what} was given but the file's keys are not encrypted"
            )
        return None
    for item in wanted:
        if isinstance(item.key.secret, bytes):
            # The pre-shared key and the MAC vouch for encrypted values only: a secret in
            # clear beside them could have been put in on the way, and would pass for checked.
            raise _refuse(
                source, item, "its secret is in clear in a file whose other keys are encrypted"
            )
    mac_declared = bool(container.mac_algorithm)
    for item in encrypted:
        for value in item.key.encrypted:
            cbc = (value.algorithm or container.default_algorithm).endswith("-cbc")
            # An empty <ValueMAC>====</ValueMAC> is read as none: it must not pass for one.
            if value.mac is None and (mac_declared or cbc):
                raise _refuse(
                    source, item, "an encrypted value carries no ValueMAC, so it cannot be checked"
                )
    derivation = container.derivation
    if psk is None and password is None:
        need = "the PSKC password" if derivation else "the pre-shared key"
        name = container.key_name
        named = f" (key name {name!r})" if name else ""
        raise ImportRefused(
            source, None, f"the keys are encrypted{named}: give {need} to import them"
        )
    if password is not None:
        if derivation is None:
            raise ImportRefused(
                source, None, "the file is not protected by a password: give the pre-shared key"
            )
        if not derivation.in_range:
            raise ImportRefused(
                source, None, "the PBKDF2 parameters are out of range (iterations or key length)"
            )
        try:
            key = derivation.derive(password)
        except DerivationFailed as exc:
            raise ImportRefused(source, None, f"cannot derive the key: {exc}") from None
    else:
        key = psk or b""
    return Decryptor(key, container.mac_algorithm, container.mac_key, container.default_algorithm)


def _decrypt(
    item: _Located, source: str, decryptor: Decryptor | None
) -> tuple[bytes | None, int | None, int | None, int | None]:
    """(secret, time interval, time offset, time drift), every MAC checked on the way."""
    key = item.key
    try:
        secret = (
            _opened(decryptor).value(key.secret)
            if isinstance(key.secret, Encrypted)
            else key.secret
        )
        interval, offset, drift, _counter = (
            _opened(decryptor).integer(value) if isinstance(value, Encrypted) else value
            for value in (key.interval, key.time, key.drift, key.counter)
        )
    except DecryptionFailed as exc:
        raise _refuse(source, item, str(exc)) from None
    return secret, interval, offset, drift


def _opened(decryptor: Decryptor | None) -> Decryptor:
    """The decryptor for an encrypted value (``_unlock`` makes one whenever a wanted key has
    such a value)."""
    if decryptor is None:
        raise DecryptionFailed("the value is encrypted and no key was given")
    return decryptor


# One key to one TokenSpec


def _spec(item: _Located, source: str, decryptor: Decryptor | None) -> TokenSpec:
    key = item.key
    _check_policy(item, source)
    secret, interval, offset, drift = _decrypt(item, source, decryptor)
    try:
        if secret is None:
            raise InvalidInput(
                "the key carries no secret (KeyReference and derived keys are not supported)"
            )
        if offset not in (None, 0):
            raise InvalidInput(f"Time {offset} is not supported (T0 must be 0, RFC 6238)")
        serial_text = key.serial or key.id
        if not serial_text:
            raise InvalidInput("the key has neither a DeviceInfo SerialNo nor an Id")
        default_period = DEFAULT_PERIOD[TokenKind.HARDWARE]  # the kind every PSKC key gets
        period = parse_period(interval) if interval is not None else default_period
        if drift is not None and abs(drift) * period > MAX_DRIFT_SECONDS:
            raise InvalidInput(
                f"TimeDrift {drift} intervals of {period} s is more than a day: not plausible"
            )
        return TokenSpec(
            serial=parse_serial(str(serial_text)),
            secret=check_secret(secret),
            kind=TokenKind.HARDWARE,
            algorithm=_hash(key.suite),
            digits=_digits(key),
            period=period,
            expires=_expiry(key),
            line=item.line,
            drift=drift or 0,
            given=_stated(key, interval, drift),
        )
    except InvalidInput as exc:
        raise _refuse(source, item, str(exc)) from None


def _check_policy(item: _Located, source: str) -> None:
    policy = item.key.policy
    if policy.unknown:
        raise _refuse(source, item, "the key's Policy has rules this server cannot honour")
    if policy.key_usage and "OTP" not in policy.key_usage:
        usage = ", ".join(policy.key_usage)
        raise _refuse(source, item, f"the key's usage is {usage}, not OTP")
    if policy.number_of_transactions is not None:
        raise _refuse(source, item, "a NumberOfTransactions limit cannot be enforced for TOTP")
    if policy.pin_key_id and policy.pin_usage not in (None, "Local"):
        raise _refuse(source, item, f"PIN usage mode {policy.pin_usage!r} is not supported")


def _stated(key: KeyRecord, interval: int | None, drift: int | None) -> frozenset[str]:
    """The settings the file gives for this key; an update leaves the others as stored."""
    present = {
        "algorithm": bool(key.suite),
        "digits": key.response_length is not None,
        "period": interval is not None,
        "expires": key.device_expiry is not None or key.policy.expiry is not None,
        "drift": drift is not None,
    }
    return frozenset(name for name, stated in present.items() if stated)


def _hash(suite: str | None) -> Algorithm:
    if not suite:
        return Algorithm.SHA1
    name = suite.strip()
    if name.upper().startswith("HMAC-"):
        name = name[5:]
    return parse_algorithm(name)


def _digits(key: KeyRecord) -> int:
    if key.response_encoding not in (None, "DECIMAL"):
        raise InvalidInput(f"response encoding {key.response_encoding} is not supported")
    if key.response_check:
        raise InvalidInput("responses with a check digit are not supported")
    length = key.response_length
    return parse_digits(length) if length is not None else TOTP_DEFAULT_DIGITS


def _expiry(key: KeyRecord) -> datetime | None:
    # The reader gives every date in UTC (a time without a zone is UTC, RFC 6030 §4.3.3).
    dates = [d for d in (key.device_expiry, key.policy.expiry) if d is not None]
    return min(dates) if dates else None


def _check_unique(
    spec: TokenSpec,
    item: _Located,
    serials: dict[str, _Located],
    seeds: DistinctSeeds[_Located],
    source: str,
) -> None:
    """Refuse a key whose serial, or whose codes, an earlier key of the file has."""
    first = serials.setdefault(spec.serial, item)
    if first is not item:
        raise _refuse(source, item, f"serial {spec.serial} is also {first.label}'s serial")
    earlier = seeds.earlier(spec, item)
    if earlier is not None:
        message = f"the secret of {earlier.label} again: every token needs a seed of its own"
        raise _refuse(source, item, message)
