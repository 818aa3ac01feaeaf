"""Our RFC 6030 reader against python-pskc: on generated files both read the same tokens, and
on altered files both refuse. Then what ours refuses that python-pskc let through."""

from __future__ import annotations

import ast
import base64
import hmac
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pskc import PSKC

from otpcore.errors import ImportRefused
from otpcore.pskc_import import read_pskc
from tests.unit.pskc_writer import KEY_LENGTHS, MAC_URIS, FileSpec, KeySpec, write_pskc
from tests.unit.test_pskc_import import assert_no_secret
from tests.unit.test_token_csv import is_a_seed

ROOT = Path(__file__).resolve().parents[2]
DATES = [
    "2031-03-31T00:00:00Z",
    "2030-01-15T12:30:00+09:00",
    "2029-06-30T23:59:59",  # no zone: UTC
    "2030-01-15T03:30:00.250Z",
    "2032-12-31",
]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Token = tuple[str, bytes, int, int, str, datetime | None, int]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def python_pskc(data: bytes, psk: bytes | None, password: str | None) -> list[Token]:
    """The tokens python-pskc reads, with the defaults our importer applies to absent values."""
    container = PSKC(io.BytesIO(data))
    if psk is not None:
        container.encryption.key = psk
    if password is not None:
        container.encryption.derive_key(password)
    tokens: list[Token] = []
    for key in container.keys:
        _ = (key.counter, key.time_offset)  # decrypted, so their MACs are checked too
        dates = [_utc(d) for d in (key.expiry_date, key.policy.expiry_date) if d is not None]
        suite = (key.algorithm_suite or "SHA1").upper().removeprefix("HMAC-")
        tokens.append(
            (
                key.serial or key.id,
                key.secret,
                key.time_interval or 60,
                key.response_length or 6,
                suite,
                min(dates) if dates else None,
                key.time_drift or 0,
            )
        )
    return tokens


def ours(data: bytes, psk: bytes | None, password: str | None) -> list[Token]:
    specs = read_pskc(data, "f.pskc", psk=psk, password=password)
    return [
        (s.serial, s.secret, s.period, s.digits, s.algorithm.value, s.expires, s.drift)
        for s in specs
    ]


def unlock(spec: FileSpec) -> tuple[bytes | None, str | None]:
    return (
        spec.psk if spec.protection == "psk" else None,
        spec.password if spec.protection == "pbkdf2" else None,
    )


@st.composite
def keys(draw: st.DrawFn, index: int) -> KeySpec:
    serial = draw(st.sampled_from([None, f"S{index}", f"9876543{index}"]))
    return KeySpec(
        # The first byte tells the keys of a file apart: each needs a seed of its own.
        secret=draw(
            st.binary(min_size=15, max_size=63).map(bytes([index + 1]).__add__).filter(is_a_seed)
        ),
        id=f"k{index}" if serial is None or draw(st.booleans()) else None,
        serial=serial,
        manufacturer=draw(st.booleans()),
        suite=draw(st.sampled_from([None, "HMAC-SHA1", "HMAC-SHA256", "HMAC-SHA512"])),
        length=draw(st.sampled_from([None, 6, 8])),
        encoding=draw(st.booleans()),
        interval=draw(st.one_of(st.none(), st.integers(10, 300))),
        time=draw(st.sampled_from([None, 0])),
        drift=draw(st.one_of(st.none(), st.integers(-20, 20))),
        counter=draw(st.one_of(st.none(), st.integers(0, 10**6))),
        device_expiry=draw(st.one_of(st.none(), st.sampled_from(DATES))),
        policy_expiry=draw(st.one_of(st.none(), st.sampled_from(DATES))),
        key_usage=draw(st.booleans()),
        encrypt_numbers=draw(st.booleans()),
        numbers_as_text=draw(st.booleans()),
    )


@st.composite
def files(draw: st.DrawFn, protections: tuple[str, ...] = ("plain", "psk", "pbkdf2")) -> FileSpec:
    count = draw(st.integers(1, 3))
    cipher = draw(st.sampled_from(sorted(KEY_LENGTHS)))
    macs = sorted(MAC_URIS)
    mac = draw(st.sampled_from(macs if cipher.endswith("-cbc") else [None, *macs]))
    return FileSpec(
        keys=[draw(keys(index)) for index in range(count)],
        protection=draw(st.sampled_from(protections)),
        cipher=cipher,
        mac=mac,
        mac_key_element=draw(st.booleans()),
        prefixed=draw(st.booleans()),
        key_name=draw(st.booleans()),
        wrap_base64=draw(st.booleans()),
        psk=draw(st.binary(min_size=KEY_LENGTHS[cipher], max_size=KEY_LENGTHS[cipher])),
        salt=draw(st.binary(min_size=8, max_size=16)),
        iterations=draw(st.integers(1, 20)),
        prf=draw(st.sampled_from([None, "hmac-sha1", "hmac-sha256"])),
    )


@SETTINGS
@given(spec=files())
def test_our_reader_and_python_pskc_read_the_same_tokens(spec: FileSpec) -> None:
    data = write_pskc(spec)
    psk, password = unlock(spec)
    assert ours(data, psk, password) == python_pskc(data, psk, password)


def _flip(match: re.Match[str], bit: int) -> str:
    raw = bytearray(base64.b64decode(re.sub(r"\s", "", match.group(2))))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return match.group(1) + base64.b64encode(bytes(raw)).decode() + match.group(3)


@SETTINGS
@given(
    spec=files(protections=("psk", "pbkdf2")),
    target=st.sampled_from(["CipherValue", "ValueMAC", "key"]),
    which=st.integers(0, 50),
    bit=st.integers(0, 8 * 16 - 1),
)
def test_an_altered_file_or_a_wrong_key_is_refused_by_both(
    spec: FileSpec, target: str, which: int, bit: int
) -> None:
    data = write_pskc(spec).decode()
    psk, password = unlock(spec)
    if target == "key":
        psk = bytes(b ^ 0x5A for b in psk) if psk is not None else None
        password = password + "!" if password is not None else None
    else:
        pattern = re.compile(rf"(<(?:\w+:)?{target}>)([^<]+)(</(?:\w+:)?{target}>)")
        found = list(pattern.finditer(data))
        if not found:  # a key-wrapped file without MACs has no ValueMAC to alter
            return
        match = found[which % len(found)]
        data = data[: match.start()] + _flip(match, bit) + data[match.end() :]
    with pytest.raises(Exception) as theirs:  # noqa: PT011 - python-pskc raises several kinds
        python_pskc(data.encode(), psk, password)
    assert theirs.value is not None
    with pytest.raises(ImportRefused) as refused:
        ours(data.encode(), psk, password)
    for key in spec.keys:
        assert_no_secret(str(refused.value), key.secret)


# What our reader refuses, and python-pskc did not


def plain_file() -> str:
    return write_pskc(FileSpec(keys=[KeySpec(secret=bytes(range(1, 21)), serial="7")])).decode()


def refusal(data: str, **kwargs: Any) -> str:
    with pytest.raises(ImportRefused) as caught:
        read_pskc(data.encode(), "f.pskc", **kwargs)
    return str(caught.value)


def test_a_mac_over_the_plaintext_is_refused() -> None:
    # The draft before RFC 6030 put the MAC over the plaintext, and python-pskc accepts either;
    # RFC 6030 §6.1.1 puts it over IV and ciphertext, and an either-or doubles what passes.
    psk = bytes(range(16))
    spec = FileSpec(keys=[KeySpec(secret=b"12345678901234567890", serial="7")], protection="psk")
    spec.psk, spec.mac_key_element = psk, False
    data = write_pskc(spec).decode()
    over_plaintext = base64.b64encode(hmac.digest(psk, b"12345678901234567890", "sha1")).decode()
    data = re.sub(r"<pskc:ValueMAC>[^<]+<", f"<pskc:ValueMAC>{over_plaintext}<", data)
    assert python_pskc(data.encode(), psk, None)[0][1] == b"12345678901234567890"
    assert "MAC check failed" in refusal(data, psk=psk)


def test_a_value_both_in_clear_and_encrypted_is_refused() -> None:
    spec = FileSpec(keys=[KeySpec(secret=bytes(range(1, 21)), serial="7")], protection="psk")
    spec.psk = bytes(16)
    data = write_pskc(spec).decode()
    data = data.replace("<pskc:Secret>", "<pskc:Secret><pskc:PlainValue>QUJD</pskc:PlainValue>")
    message = refusal(data, psk=spec.psk)
    assert "both a PlainValue and an EncryptedValue" in message


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("<SecretContainer><Device><Secret/></Device></SecretContainer>", "draft format"),
        ("<KeyContainer>\n<Device>\n<Secret/></Device></KeyContainer>", "draft format"),
    ],
)
def test_the_draft_format_is_refused(document: str, words: str) -> None:
    assert words in refusal(document)


def test_a_value_longer_than_any_pskc_value_is_refused() -> None:
    data = plain_file().replace("<pskc:PlainValue>", "<pskc:PlainValue>" + "A" * 4096, 1)
    assert "longer than any PSKC value needs" in refusal(data)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("<KeyLength>16</KeyLength>", "incomplete PBKDF2 parameters"),
        ("<IterationCount>10</IterationCount>", "incomplete PBKDF2 parameters"),
        (
            '<PRF Algorithm="urn:x#hmac-md5"/></pkcs5',
            "unsupported PBKDF2 pseudorandom function 'hmac-md5'",
        ),
    ],
)
def test_pbkdf2_parameters_we_cannot_use_are_refused(change: str, words: str) -> None:
    spec = FileSpec(keys=[KeySpec(secret=bytes(range(1, 21)), serial="7")], protection="pbkdf2")
    data = write_pskc(spec).decode()
    if change.startswith("<PRF"):
        data = data.replace("</pkcs5", change, 1)
    else:
        data = data.replace(change, "")
    assert f"cannot derive the key: {words}" in refusal(data, password=spec.password)


@pytest.mark.parametrize("method", ["aes128-gcm", "camellia128-cbc", "kw-tripledes"])
def test_an_encryption_method_we_do_not_implement_is_named(method: str) -> None:
    spec = FileSpec(keys=[KeySpec(secret=bytes(range(1, 21)), serial="7")], protection="psk")
    spec.psk = bytes(16)
    data = write_pskc(spec).decode().replace("#aes128-cbc", f"#{method}")
    assert f"unsupported encryption method {method!r}" in refusal(data, psk=spec.psk)


def test_a_file_without_any_namespace_reads_as_the_rfcs() -> None:
    data = re.sub(r"</?pskc:|\sxmlns:pskc=\"[^\"]+\"", _unprefix, plain_file())
    assert "<pskc:" not in data
    assert "xmlns:pskc" not in data
    (spec,) = read_pskc(data.encode(), "f")
    assert (spec.serial, spec.secret) == ("7", bytes(range(1, 21)))


def _unprefix(match: re.Match[str]) -> str:
    text = match.group(0)
    return "" if text.startswith(" ") else text.replace("pskc:", "")


def test_python_pskc_is_a_test_dependency_only() -> None:
    offences = []
    for package in ("otpcore", "radiusd", "cli", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                offences += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "pskc"]
    assert offences == []


@pytest.mark.parametrize(
    ("element", "words"),
    [
        ("<pskc:Secret>", "the key's Data has more than one <Secret>"),
        ("<pskc:ValueMAC>", "the Secret has more than one <ValueMAC>"),
        ("<pskc:SerialNo>", "the DeviceInfo has more than one <SerialNo>"),
        ("<pskc:MACMethod ", "the KeyContainer has more than one <MACMethod>"),
    ],
)
def test_a_second_element_where_one_belongs_is_refused(element: str, words: str) -> None:
    # python-pskc read the first of two; which one the vendor meant is not ours to guess.
    spec = FileSpec(keys=[KeySpec(secret=bytes(range(1, 21)), serial="7")], protection="psk")
    spec.psk = bytes(16)
    data = write_pskc(spec).decode()
    end = re.sub(r"[<> ]|pskc:", "", element)
    found = re.search(rf"{re.escape(element)}.*?</pskc:{end}>", data, flags=re.S)
    assert found is not None
    data = data.replace(found.group(0), found.group(0) * 2, 1)
    message = refusal(data, psk=spec.psk)
    assert f"not a valid PSKC file: {words}" in message
    assert_no_secret(message, bytes(range(1, 21)))


def test_an_expiry_beyond_the_calendar_in_utc_is_refused() -> None:
    data = plain_file().replace(
        "</pskc:DeviceInfo>",
        "<pskc:ExpiryDate>9999-12-31T23:00:00-05:00</pskc:ExpiryDate></pskc:DeviceInfo>",
    )
    assert "is not a date and time" in refusal(data)
