"""PSKC (RFC 6030) reading: the RFC's own figures, files python-pskc writes, and bad files."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pskc import PSKC

from otpcore.errors import ImportRefused, InvalidInput
from otpcore.model import Algorithm, TokenKind
from otpcore.pskc_import import detect_format, read_pskc
from otpcore.token_csv import DEFAULT_PERIOD
from tests.unit.test_token_csv import is_a_seed

DATA = Path(__file__).parent.parent / "data" / "pskc"
TOTP_URI = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
HOTP_URI = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
PIN_URI = "urn:ietf:params:xml:ns:keyprov:pskc:pin"
RFC_PSK = bytes.fromhex("12345678901234567890123456789012")
RFC_PASSWORD = "qwerty"
RFC_SECRET = b"12345678901234567890"
SEED_A, SEED_B, SEED_C = (
    bytes(range(first, first + size)) for first, size in ((65, 20), (2, 32), (3, 64))
)


def rfc_secret(index: int) -> bytes:
    """A seed of its own for key ``index`` of a file (key 0's is RFC_SECRET)."""
    return RFC_SECRET[:-1] + bytes([RFC_SECRET[-1] + index])


def pskc_bytes(
    keys: list[dict[str, Any]],
    protection: str = "plain",
    *,
    psk: bytes = RFC_PSK,
    password: str = RFC_PASSWORD,
    algorithm: str | None = None,
) -> bytes:
    """A PSKC file written by python-pskc; each dict holds python-pskc key attributes."""
    container = PSKC()
    for attributes in keys:
        container.add_key(**{"algorithm": TOTP_URI, **attributes})
    if protection == "psk":
        container.encryption.setup_preshared_key(key=psk, algorithm=algorithm)
    elif protection == "pbkdf2":
        container.encryption.setup_pbkdf2(password, iterations=1000, algorithm=algorithm)
    out = io.BytesIO()
    container.write(out)
    return out.getvalue()


def refused(data: bytes, name: str = "tokens.pskc", **kwargs: Any) -> ImportRefused:
    """The ImportRefused a file raises; it names the file and no secret."""
    with pytest.raises(ImportRefused) as caught:
        read_pskc(data, name, **kwargs)
    message = str(caught.value)
    assert message.startswith(name + ":")
    assert caught.value.file == name
    return caught.value


def assert_no_secret(message: str, secret: bytes) -> None:
    for form in (
        secret.hex(),
        base64.b32encode(secret).decode().rstrip("="),
        base64.b64encode(secret).decode(),
    ):
        assert form.lower() not in message.lower()


def key_line(path: Path, key_id: str) -> int:
    """The line where the <Key Id="…"> element starts in a data file."""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if re.search(r"<(\w+:)?Key\s", text) and f'Id="{key_id}"' in text:
            return number
    raise AssertionError(f"no key {key_id} in {path}")


# detect_format


@pytest.mark.parametrize("path", sorted(DATA.glob("*.pskcxml")), ids=lambda p: p.name)
def test_every_pskc_data_file_is_detected_as_pskc(path: Path) -> None:
    assert detect_format(path.read_bytes()) == "pskc"


def test_xml_after_a_byte_order_mark_and_blank_lines_is_pskc() -> None:
    assert detect_format(b"\xef\xbb\xbf\n\n  <KeyContainer/>") == "pskc"


def test_a_token_csv_is_csv() -> None:
    assert detect_format(b"serial,secret\n123,3132333435363738393031323334353637383930\n") == "csv"


@given(st.text().filter(lambda t: not t.lstrip("\ufeff").lstrip().startswith("<")))
def test_text_not_starting_with_a_tag_is_csv(text: str) -> None:
    assert detect_format(text.encode()) == "csv"


# RFC 6030 figures 2 to 7: all HOTP, so each is refused, naming its key and line.

RFC_FIGURES = [
    ("rfc6030-figure2.pskcxml", "12345678", None, {}),
    ("rfc6030-figure3.pskcxml", "12345678", "987654321", {}),
    ("rfc6030-figure4.pskcxml", "12345678", "987654321", {}),
    ("rfc6030-figure5.pskcxml", "12345678", "987654321", {}),
    ("rfc6030-figure6.pskcxml", "12345678", "987654321", {"psk": RFC_PSK}),
    ("rfc6030-figure6.pskcxml", "12345678", "987654321", {}),
    ("rfc6030-figure7.pskcxml", "123456", "987654321", {"password": RFC_PASSWORD}),
    ("rfc6030-figure7.pskcxml", "123456", "987654321", {}),
]


@pytest.mark.parametrize(("name", "key_id", "serial", "kwargs"), RFC_FIGURES)
def test_rfc6030_hotp_figures_are_refused_naming_the_key(
    name: str, key_id: str, serial: str | None, kwargs: dict[str, Any]
) -> None:
    path = DATA / name
    error = refused(path.read_bytes(), name, **kwargs)
    assert f"key {key_id}" in str(error)
    if serial:
        assert f"serial {serial}" in str(error)
    assert "HOTP" in str(error)
    assert "not supported" in str(error)
    assert error.line == key_line(path, key_id)
    assert_no_secret(str(error), RFC_SECRET)


def test_rfc6030_figure7_key_derivation_is_transcribed_right() -> None:
    # The RFC prints the derived key: PBKDF2-HMAC-SHA1("qwerty", salt, 1000, 16 bytes).
    salt = base64.b64decode("Ej7/PEpyEpw=")
    derived = hashlib.pbkdf2_hmac("sha1", RFC_PASSWORD.encode(), salt, 1000, 16)
    assert derived.hex() == "651e63cd57008476af1ff6422cd02e41"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("rfc6030-figure6-totp.pskcxml", {"psk": RFC_PSK}),
        ("rfc6030-figure7-totp.pskcxml", {"password": RFC_PASSWORD}),
    ],
)
def test_rfc6030_encrypted_figures_as_totp_decrypt_to_the_rfc_secret(
    name: str, kwargs: dict[str, Any]
) -> None:
    (spec,) = read_pskc((DATA / name).read_bytes(), name, **kwargs)
    assert spec.serial == "987654321"
    assert spec.secret == RFC_SECRET
    # The figures give no TimeInterval: the hardware default, as the key is a device's.
    assert (spec.algorithm, spec.digits, spec.period) == (Algorithm.SHA1, 8, 60)
    assert spec.kind is TokenKind.HARDWARE
    assert spec.expires is None


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("rfc6030-figure6-totp.pskcxml", {}, "give the pre-shared key"),
        ("rfc6030-figure6-totp.pskcxml", {"psk": bytes(16)}, "wrong pre-shared key or password"),
        ("rfc6030-figure6-totp.pskcxml", {"psk": bytes(24)}, "wrong pre-shared key or password"),
        ("rfc6030-figure6-totp.pskcxml", {"password": RFC_PASSWORD}, "not protected by a password"),
        ("rfc6030-figure7-totp.pskcxml", {}, "give the PSKC password"),
        (
            "rfc6030-figure7-totp.pskcxml",
            {"password": "qwertz"},
            "wrong pre-shared key or password",
        ),
        ("rfc6030-figure7-totp.pskcxml", {"psk": RFC_PSK}, "wrong pre-shared key or password"),
        ("rfc6030-figure6-totp-badmac.pskcxml", {"psk": RFC_PSK}, "MAC check failed"),
    ],
)
def test_wrong_or_missing_protection_is_one_clear_error(
    name: str, kwargs: dict[str, Any], words: str
) -> None:
    error = refused((DATA / name).read_bytes(), name, **kwargs)
    assert words in str(error)
    assert_no_secret(str(error), RFC_SECRET)


def test_a_psk_and_a_password_together_are_misuse() -> None:
    data = (DATA / "rfc6030-figure6-totp.pskcxml").read_bytes()
    with pytest.raises(InvalidInput, match="not both"):
        read_pskc(data, "f", psk=RFC_PSK, password=RFC_PASSWORD)


@pytest.mark.parametrize("kwargs", [{"psk": RFC_PSK}, {"password": RFC_PASSWORD}])
def test_protection_given_for_a_plain_file_is_refused(kwargs: dict[str, Any]) -> None:
    data = pskc_bytes([{"serial": "100001", "secret": RFC_SECRET}])
    assert "not encrypted" in str(refused(data, **kwargs))


# Files written by python-pskc


@pytest.mark.parametrize("protection", ["plain", "psk", "pbkdf2"])
def test_python_pskc_files_import_with_each_protection(protection: str) -> None:
    expiry = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)
    keys: list[dict[str, Any]] = [
        {"id": "k1", "serial": "100001", "secret": SEED_A},
        {
            "id": "k2",
            "serial": "100002",
            "secret": SEED_B,
            "algorithm_suite": "HMAC-SHA256",
            "response_length": 8,
            "time_interval": 60,
            "expiry_date": expiry,
        },
        {
            "id": "k3",
            "serial": "100003",
            "secret": SEED_C,
            "algorithm_suite": "HMAC-SHA512",
            "response_length": 6,
            "time_interval": 30,
            "time_offset": 0,
        },
    ]
    kwargs: dict[str, Any] = {"plain": {}, "psk": {"psk": RFC_PSK}}.get(
        protection, {"password": RFC_PASSWORD}
    )
    specs = read_pskc(pskc_bytes(keys, protection), "vendor.pskc", **kwargs)
    summary = [(s.serial, s.secret, s.algorithm, s.digits, s.period, s.expires) for s in specs]
    assert summary == [
        ("100001", SEED_A, Algorithm.SHA1, 6, 60, None),
        ("100002", SEED_B, Algorithm.SHA256, 8, 60, expiry),
        ("100003", SEED_C, Algorithm.SHA512, 6, 30, None),
    ]
    assert all(spec.kind is TokenKind.HARDWARE for spec in specs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.binary(min_size=16, max_size=64).filter(is_a_seed),
    suite=st.sampled_from([None, "HMAC-SHA1", "HMAC-SHA256", "hmac-sha512", "SHA256"]),
    digits=st.sampled_from([None, 6, 8]),
    period=st.one_of(st.none(), st.integers(min_value=10, max_value=300)),
    protection=st.sampled_from(["plain", "psk", "pbkdf2"]),
    serial=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=",<>&"),
        min_size=1,
        max_size=20,
    ),
)
def test_any_totp_key_round_trips(
    secret: bytes,
    suite: str | None,
    digits: int | None,
    period: int | None,
    protection: str,
    serial: str,
) -> None:
    key: dict[str, Any] = {"id": "k", "serial": serial, "secret": secret}
    if suite:
        key["algorithm_suite"] = suite
    if digits:
        key["response_length"] = digits
    if period:
        key["time_interval"] = period
    kwargs: dict[str, Any] = {"plain": {}, "psk": {"psk": RFC_PSK}}.get(
        protection, {"password": "pw"}
    )
    data = pskc_bytes([key], protection, password="pw")
    (spec,) = read_pskc(data, "f", **kwargs)
    expected = (suite or "SHA1").upper().removeprefix("HMAC-")
    assert spec.serial == serial
    assert spec.secret == secret
    assert spec.algorithm == Algorithm(expected)
    assert spec.digits == (digits or 6)
    assert spec.period == (period or 60)


def test_a_key_without_time_interval_gets_the_hardware_default_period() -> None:
    # SPEC §2: hardware tokens default to 60 s. A PSKC key is a hardware token, so a file
    # that leaves TimeInterval out gets what a CSV row without a period gets, not 30.
    keys: list[dict[str, Any]] = [
        {"serial": "57", "secret": RFC_SECRET},
        {"serial": "58", "secret": rfc_secret(1), "time_interval": 30},
    ]
    without, stated = read_pskc(pskc_bytes(keys), "f")
    assert (without.kind, without.period) == (TokenKind.HARDWARE, 60)
    assert without.period == DEFAULT_PERIOD[TokenKind.HARDWARE]
    assert stated.period == 30
    # The default stands in for what the file left out: an --update keeps the stored period.
    assert without.given is not None
    assert "period" not in without.given


@pytest.mark.parametrize("algorithm", ["kw-aes128", "aes256-cbc", "kw-aes256"])
def test_other_encryption_algorithms_import(algorithm: str) -> None:
    psk = bytes(range(32 if "256" in algorithm else 16))
    data = pskc_bytes([{"serial": "5", "secret": RFC_SECRET}], "psk", psk=psk, algorithm=algorithm)
    (spec,) = read_pskc(data, "f", psk=psk)
    assert spec.secret == RFC_SECRET


def test_altered_ciphertext_fails_the_mac() -> None:
    data = pskc_bytes([{"id": "k1", "serial": "7", "secret": RFC_SECRET}], "psk").decode()
    value = re.findall(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", data)[-1]
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 0x01
    altered = data.replace(value, base64.b64encode(bytes(raw)).decode()).encode()
    error = refused(altered, psk=RFC_PSK)
    assert "key k1 (serial 7)" in str(error)
    assert "MAC check failed" in str(error) or "wrong pre-shared key" in str(error)


def test_a_cbc_value_without_a_mac_is_refused() -> None:
    data = pskc_bytes([{"id": "k1", "serial": "7", "secret": RFC_SECRET}], "psk").decode()
    stripped = re.sub(r"<pskc:ValueMAC>[^<]*</pskc:ValueMAC>", "", data)
    stripped = re.sub(r"<pskc:MACMethod.*?</pskc:MACMethod>", "", stripped, flags=re.S)
    error = refused(stripped.encode(), psk=RFC_PSK)
    assert "no ValueMAC" in str(error)


@pytest.mark.parametrize("blank", ["====", ""])
def test_an_empty_value_mac_is_refused_like_a_missing_one(blank: str) -> None:
    """An empty MAC must not pass for a checked one: the altered value would import."""
    path = DATA / "rfc6030-figure6-totp.pskcxml"
    data = path.read_text()
    (value,) = re.findall(r"<Secret>.*?<xenc:CipherValue>\s*([^<\s]+)", data, flags=re.S)
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 0x01  # one bit of the CBC IV: the first byte of the seed changes, nothing else
    altered = data.replace(value, base64.b64encode(bytes(raw)).decode())
    blanked = re.sub(r"<ValueMAC>[^<]*</ValueMAC>", f"<ValueMAC>{blank}</ValueMAC>", altered)
    error = refused(blanked.encode(), psk=RFC_PSK)
    assert error.line == key_line(path, "12345678")
    assert "no ValueMAC" in str(error)
    assert_no_secret(str(error), RFC_SECRET)


def test_a_secret_in_clear_in_an_encrypted_file_is_refused() -> None:
    """Added on the way to an operator who trusts the file because its keys are checked."""
    keys = [{"id": "k1", "serial": "7", "secret": RFC_SECRET}]
    protected = pskc_bytes(keys, "psk").decode()
    plain = pskc_bytes([{"id": "k2", "serial": "8", "secret": b"attacker chose this!"}]).decode()
    package = re.search(r"<pskc:KeyPackage>.*</pskc:KeyPackage>", plain, flags=re.S)
    assert package is not None
    mixed = protected.replace("</pskc:KeyContainer>", package.group(0) + "</pskc:KeyContainer>")
    error = refused(mixed.encode(), psk=RFC_PSK)
    assert "key k2 (serial 8)" in str(error)
    assert "in clear" in str(error)
    assert_no_secret(str(error), b"attacker chose this!")
    # A key with no secret at all is refused for that, not for a secret in clear.
    bare = pskc_bytes([{"id": "k3", "serial": "9"}]).decode()
    package = re.search(r"<pskc:KeyPackage>.*</pskc:KeyPackage>", bare, flags=re.S)
    assert package is not None
    mixed = protected.replace("</pskc:KeyContainer>", package.group(0) + "</pskc:KeyContainer>")
    assert "carries no secret" in str(refused(mixed.encode(), psk=RFC_PSK))


def test_a_key_wrapped_value_needs_no_mac() -> None:
    data = pskc_bytes([{"serial": "8", "secret": RFC_SECRET}], "psk", algorithm="kw-aes128")
    assert b"ValueMAC" not in data
    (spec,) = read_pskc(data, "f", psk=RFC_PSK)
    assert spec.secret == RFC_SECRET


# Not a PSKC file


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"<KeyContainer Version='1.0'><KeyPackage></KeyContainer>", 1, "not well-formed"),
        (b"<?xml version='1.0'?>\n\n<Key>\n  <a>\n</Key>", 5, "not well-formed"),
        (b"<html><body>hello</body></html>", 1, "root element is <html>"),
        (
            b"<KeyContainer xmlns='urn:ietf:params:xml:ns:keyprov:pskc' Version='1.0'/>",
            None,
            "no keys",
        ),
        (b"<KeyContainer Version='2.0'/>", None, "Unsupported version"),
        (b"serial,secret\n1,00\n", 1, "not well-formed"),
        (b"", 1, "not well-formed"),
    ],
)
def test_files_that_are_not_pskc_are_refused_with_a_line(
    data: bytes, line: int | None, words: str
) -> None:
    error = refused(data)
    assert error.line == line
    assert words in str(error)


def test_a_doctype_is_refused_before_any_entity_expands() -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE KeyContainer [\n<!ENTITY a "aaaaaaaaaa">\n'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n<KeyContainer>&b;</KeyContainer>'
    )
    assert "DOCTYPE" in str(refused(bomb))


def test_an_invalid_integer_is_refused_as_not_valid_pskc() -> None:
    data = pskc_bytes([{"serial": "1", "secret": RFC_SECRET, "time_interval": 30}])
    broken = data.replace(b"<pskc:PlainValue>30<", b"<pskc:PlainValue>THIRTY<")
    assert "not a valid PSKC file" in str(refused(broken))


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        (b"<pskc:PlainValue>60<", b"<pskc:PlainValue>SIXTY<"),
        (b'Length="8"', b'Length="eight"'),
    ],
)
def test_a_value_python_pskc_cannot_read_is_refused_at_its_keys_line(
    good: bytes, bad: bytes
) -> None:
    keys = [
        {"serial": "A1", "secret": RFC_SECRET, "time_interval": 30},
        {"serial": "A2", "secret": RFC_SECRET[::-1], "time_interval": 60, "response_length": 8},
    ]
    data = pskc_bytes(keys)
    broken = data.replace(good, bad)
    assert broken != data
    lines = data.split(b"\n")
    second_key = [number for number, line in enumerate(lines, 1) if b"<pskc:Key " in line][1]
    error = refused(broken)
    assert error.line == second_key
    assert str(error).startswith(f"tokens.pskc:{second_key}: not a valid PSKC file: ")


# Which keys, and which of their properties, import


def test_one_hotp_key_among_totp_keys_refuses_the_file_naming_it() -> None:
    data = pskc_bytes(
        [
            {"id": "t1", "serial": "1", "secret": RFC_SECRET},
            {"id": "h1", "serial": "2", "secret": RFC_SECRET, "algorithm": HOTP_URI},
            {"id": "t3", "serial": "3", "secret": RFC_SECRET},
        ]
    )
    error = refused(data)
    assert "key h1 (serial 2): HOTP" in str(error)
    line = next(
        n for n, t in enumerate(data.decode().splitlines(), 1) if 'Id="h1"' in t and "Key" in t
    )
    assert error.line == line


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("urn:ietf:params:xml:ns:keyprov:pskc#hotp", "HOTP"),
        ("HOTP", "HOTP"),
        ("urn:ietf:params:xml:ns:keyprov:pskc:ocra", "not supported; only TOTP"),
        ("http://www.yubico.com/#yubikey-aes", "not supported; only TOTP"),
    ],
)
def test_other_algorithms_are_refused(uri: str, words: str) -> None:
    data = pskc_bytes([{"id": "x", "serial": "9", "secret": RFC_SECRET, "algorithm": uri}])
    assert words in str(refused(data))


@pytest.mark.parametrize(("legacy_uri"), ["urn:ietf:params:xml:ns:keyprov:pskc#totp", "TOTP"])
def test_legacy_totp_uris_import(legacy_uri: str) -> None:
    data = pskc_bytes([{"serial": "9", "secret": RFC_SECRET, "algorithm": legacy_uri}])
    assert read_pskc(data, "f")[0].serial == "9"


def test_the_key_id_stands_in_for_a_missing_serial() -> None:
    data = pskc_bytes([{"id": "2600215704919", "secret": RFC_SECRET}])
    assert read_pskc(data, "f")[0].serial == "2600215704919"


def test_a_key_with_neither_serial_nor_id_is_refused() -> None:
    assert "neither a DeviceInfo SerialNo nor an Id" in str(
        refused(pskc_bytes([{"secret": RFC_SECRET}]))
    )


def test_two_keys_with_one_serial_are_refused() -> None:
    data = pskc_bytes(
        [
            {"id": "a", "serial": "77", "secret": RFC_SECRET},
            {"id": "b", "serial": "77", "secret": RFC_SECRET},
        ]
    )
    error = refused(data)
    assert "key b (serial 77)" in str(error)
    assert "key a" in str(error)


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"response_length": 7}, "digits must be 6 or 8"),
        ({"time_interval": 5}, "period must be"),
        ({"time_interval": 3600}, "period must be"),
        ({"algorithm_suite": "HMAC-MD5"}, "unknown algorithm"),
        ({"secret": b"short"}, "secret must be 16 to 128 bytes"),
        ({"secret": None}, "carries no secret"),
        ({"time_offset": 5}, "T0 must be 0"),
        ({"time_drift": 1441, "time_interval": 60}, "TimeDrift 1441"),
        ({"time_drift": -2881}, "more than a day"),
        ({"response_encoding": "ALPHANUMERIC", "response_length": 6}, "response encoding"),
        ({"response_check": True, "response_length": 6}, "check digit"),
        ({"policy.key_usage": ["CR"]}, "usage is CR"),
        ({"policy.number_of_transactions": 10}, "NumberOfTransactions"),
        ({"serial": "has space"}, "printable ASCII"),
    ],
)
def test_unusable_key_properties_are_refused_naming_the_key(
    attributes: dict[str, Any], words: str
) -> None:
    key: dict[str, Any] = {"id": "kx", "serial": "42", "secret": RFC_SECRET, **attributes}
    error = refused(pskc_bytes([key]))
    assert "key kx" in str(error)
    assert words in str(error)
    assert_no_secret(str(error), RFC_SECRET)


@pytest.mark.parametrize(
    ("drift", "protection"), [(2, "plain"), (-3, "psk"), (0, "pbkdf2"), (1440, "plain")]
)
def test_time_drift_is_carried_with_its_sign(drift: int, protection: str) -> None:
    # RFC 6030 TimeDrift counts intervals the device runs ahead (negative: behind), as our
    # drift does; 1440 intervals of 60 s (the default) is a day, the largest accepted.
    key = {"id": "kd", "serial": "55", "secret": RFC_SECRET, "time_drift": drift}
    (spec,) = read_pskc(pskc_bytes([key], protection), "f", **_unlock(protection))
    assert spec.drift == drift


def test_a_key_without_time_drift_has_none() -> None:
    (spec,) = read_pskc(pskc_bytes([{"serial": "56", "secret": RFC_SECRET}]), "f")
    assert spec.drift == 0


def _unlock(protection: str) -> dict[str, Any]:
    secrets: dict[str, dict[str, Any]] = {
        "psk": {"psk": RFC_PSK},
        "pbkdf2": {"password": RFC_PASSWORD},
    }
    return secrets.get(protection, {})


def test_a_policy_with_unknown_rules_is_refused() -> None:
    data = pskc_bytes([{"id": "kx", "serial": "42", "secret": RFC_SECRET}]).decode()
    data = data.replace(
        "</pskc:Key>", "<pskc:Policy><pskc:Geofence>CH</pskc:Geofence></pskc:Policy></pskc:Key>"
    )
    assert "cannot honour" in str(refused(data.encode()))


def test_an_otp_key_usage_imports() -> None:
    data = pskc_bytes([{"serial": "42", "secret": RFC_SECRET, "policy.key_usage": ["OTP"]}])
    assert read_pskc(data, "f")[0].serial == "42"


def test_expiry_is_the_earlier_of_device_and_policy_dates_in_utc() -> None:
    device = datetime(2027, 6, 30, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    policy = datetime(2027, 6, 30, 1, 0, tzinfo=UTC)
    data = pskc_bytes(
        [
            {"serial": "1", "secret": rfc_secret(1), "expiry_date": device},
            {"serial": "2", "secret": rfc_secret(2), "policy.expiry_date": policy},
            {
                "serial": "3",
                "secret": rfc_secret(3),
                "expiry_date": device,
                "policy.expiry_date": policy,
            },
        ]
    )
    first, second, both = read_pskc(data, "f")
    assert first.expires == datetime(2027, 6, 30, 0, 0, tzinfo=UTC)
    assert second.expires == policy
    assert both.expires == datetime(2027, 6, 30, 0, 0, tzinfo=UTC)
    assert first.expires is not None
    assert first.expires.tzinfo is UTC


def test_an_expiry_without_a_zone_is_utc() -> None:
    data = pskc_bytes([{"serial": "1", "secret": RFC_SECRET}]).decode()
    data = data.replace(
        "</pskc:DeviceInfo>",
        "<pskc:ExpiryDate>2028-01-31T00:00:00</pskc:ExpiryDate></pskc:DeviceInfo>",
    )
    assert read_pskc(data.encode(), "f")[0].expires == datetime(2028, 1, 31, tzinfo=UTC)


def test_a_pin_key_for_a_local_pin_is_skipped() -> None:
    data = pskc_bytes(
        [
            {
                "id": "otp",
                "serial": "55",
                "secret": RFC_SECRET,
                "policy.pin_key_id": "pin",
                "policy.pin_usage": "Local",
            },
            {
                "id": "pin",
                "serial": "55",
                "secret": b"1234",
                "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc:pin",
            },
        ]
    )
    (spec,) = read_pskc(data, "f")
    assert spec.serial == "55"


def test_a_pin_the_server_would_have_to_check_is_refused() -> None:
    data = pskc_bytes(
        [
            {
                "id": "otp",
                "serial": "55",
                "secret": RFC_SECRET,
                "policy.pin_key_id": "pin",
                "policy.pin_usage": "Append",
            },
            {
                "id": "pin",
                "serial": "55",
                "secret": b"1234",
                "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc:pin",
            },
        ]
    )
    assert "PIN usage mode 'Append'" in str(refused(data))


def test_an_unreferenced_pin_key_is_refused() -> None:
    data = pskc_bytes(
        [
            {
                "id": "pin",
                "serial": "55",
                "secret": b"1234",
                "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc:pin",
            }
        ]
    )
    assert "not supported; only TOTP" in str(refused(data))


def test_absurd_pbkdf2_parameters_are_refused_before_deriving() -> None:
    data = pskc_bytes([{"serial": "1", "secret": RFC_SECRET}], "pbkdf2").decode()
    data = data.replace("<IterationCount>1000<", "<IterationCount>99999999999<")
    assert "out of range" in str(refused(data.encode(), password=RFC_PASSWORD))


def test_progress_counts_packages_then_keys_and_ends_at_the_total() -> None:
    reports: list[tuple[int, int]] = []
    keys = [{"serial": str(n), "secret": rfc_secret(n)} for n in range(3)]
    read_pskc(pskc_bytes(keys, "psk"), "f", psk=RFC_PSK, progress=lambda *r: reports.append(r))
    assert reports == [(done, 6) for done in range(1, 7)]


def test_progress_ends_at_the_total_when_a_pin_key_is_skipped() -> None:
    reports: list[tuple[int, int]] = []
    otp: dict[str, Any] = {"id": "otp", "serial": "55", "secret": RFC_SECRET}
    otp.update({"policy.pin_key_id": "pin", "policy.pin_usage": "Local"})
    pin = {"id": "pin", "serial": "55", "secret": b"1234", "algorithm": PIN_URI}
    read_pskc(pskc_bytes([otp, pin]), "f", progress=lambda *r: reports.append(r))
    assert reports[-1] == (4, 4)  # two packages, two keys; the PIN key is not checked
    assert [done for done, _total in reports] == sorted(done for done, _total in reports)


def test_a_placeholder_seed_is_refused_naming_its_key() -> None:
    keys = [{"id": "k1", "serial": "1", "secret": RFC_SECRET}, {"id": "k2", "serial": "2",
            "secret": bytes(20)}]  # fmt: skip
    message = str(refused(pskc_bytes(keys, "psk"), psk=RFC_PSK))
    assert message.endswith(
        "key k2 (serial 2): secret is one byte repeated: a placeholder, not a seed"
    )


def test_one_seed_under_two_serials_is_refused_at_the_second() -> None:
    # Either token would open the other's logins.
    keys = [{"id": f"k{n}", "serial": str(n), "secret": s} for n, s in
            enumerate([RFC_SECRET, rfc_secret(1), RFC_SECRET])]  # fmt: skip
    message = str(refused(pskc_bytes(keys, "psk"), psk=RFC_PSK))
    assert message.endswith(
        "key k2 (serial 2): the secret of key k0 (serial 0) again: "
        "every token needs a seed of its own"
    )
    assert RFC_SECRET.hex() not in message


def test_the_first_bad_key_is_named_whatever_is_wrong_with_it() -> None:
    keys = [
        {"id": "k1", "serial": "1", "secret": RFC_SECRET},
        {"id": "k2", "serial": "2", "secret": RFC_SECRET + bytes(2)},  # k1's codes
        {"id": "k3", "serial": "3", "secret": rfc_secret(3), "time_interval": 301},
    ]
    message = str(refused(pskc_bytes(keys, "psk"), psk=RFC_PSK))
    assert "key k2 (serial 2): the secret of key k1 (serial 1) again" in message
