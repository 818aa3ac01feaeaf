"""RADIUS codec: RFC vectors, malformed input, Message-Authenticator, Proxy-State, properties."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radiusd.hiding import hide_password, response_authenticator
from radiusd.nas import decode_reply, encode_request
from radiusd.packets import (
    Request,
    UnexpectedCode,
    attribute_name,
    decode_request,
    encode_reply,
)
from radiusd.wire import MAX_PACKET_LENGTH, Attr, Codes, MalformedPacket, parse_header

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"testing123"
AUTH = bytes(range(16))

# VECTORS.md: RFC 2865 §7.1 and RFC 5997 §6.1, shared secret xyzzy5461.
RFC_SECRET = b"xyzzy5461"
RFC2865_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93"
    "d413ce3196e43f782a0aee0406c0a80110050600000003"
)
RFC2865_ACCEPT = bytes.fromhex(
    "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103"
)
RFC5997_STATUS = bytes.fromhex(
    "0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3e243822097c84fa3"
)


def attr(kind: int, value: bytes) -> bytes:
    """Encode one attribute by hand, independently of the module under test."""
    return bytes((kind, len(value) + 2)) + value


def packet(code: int, attributes: bytes, *, length: int | None = None) -> bytes:
    """Assemble a datagram by hand; `length` overrides the header's Length field."""
    size = 20 + len(attributes) if length is None else length
    return struct.pack("!BBH", code, 1, size) + AUTH + attributes


def signed(code: int, attributes: bytes, secret: bytes = SECRET) -> bytes:
    """Fill in the (zeroed) Message-Authenticator wherever it stands, as RFC 3579 §3.2 says."""
    raw = packet(code, attributes)
    at = raw.index(bytes((80, 18)) + bytes(16)) + 2
    mac = hmac.new(secret, raw, hashlib.md5).digest()
    return raw[:at] + mac + raw[at + 16 :]


MA_ZERO = attr(80, bytes(16))
NAME = attr(1, b"alice")
PASSWORD = attr(2, hide_password(b"secret", SECRET, AUTH))


# --- known answers -------------------------------------------------------------------------------


def test_rfc2865_request_decrypts_to_arctangent() -> None:
    request = decode_request(RFC2865_REQUEST, RFC_SECRET)
    assert request.code is Codes.ACCESS_REQUEST
    assert request.user_name == "nemo"
    assert request.password == b"arctangent"
    assert request.nas_ip == "192.168.1.16"
    assert not request.has_message_authenticator
    assert not request.message_authenticator_valid


def test_rfc2865_accept_response_authenticator() -> None:
    request_auth = RFC2865_REQUEST[4:20]
    expected = bytes.fromhex("86fe220e7624ba2a1005f6bf9b55e0b2")
    assert response_authenticator(RFC2865_ACCEPT, request_auth, RFC_SECRET) == expected
    reply = decode_reply(RFC2865_ACCEPT, RFC_SECRET, request_auth)
    assert reply.response_authenticator_valid
    assert reply.attribute_types == (6, 15, 14)


def test_rfc5997_status_server_message_authenticator_verifies() -> None:
    request = decode_request(RFC5997_STATUS, RFC_SECRET)
    assert request.code is Codes.STATUS_SERVER
    assert request.identifier == 0xDA
    assert request.message_authenticator_valid
    assert not decode_request(RFC5997_STATUS, b"wrong-secret").message_authenticator_valid


def test_rfc5997_bare_accept_response_authenticator() -> None:
    bare_accept = bytes.fromhex("02da0014") + bytes(16)
    result = response_authenticator(bare_accept, RFC5997_STATUS[4:20], RFC_SECRET)
    assert result == bytes.fromhex("ef0d552a4bf2d693ec2b6fe8b5411d66")


def test_reply_to_status_server_is_signed_both_ways() -> None:
    request = decode_request(RFC5997_STATUS, RFC_SECRET)
    raw = encode_reply(request, Codes.ACCESS_ACCEPT, RFC_SECRET)
    reply = decode_reply(raw, RFC_SECRET, request.authenticator)
    assert (reply.code, reply.identifier) == (Codes.ACCESS_ACCEPT, 0xDA)
    assert reply.attribute_types == (Attr.MESSAGE_AUTHENTICATOR,)
    assert reply.message_authenticator_valid
    assert reply.response_authenticator_valid


# --- header --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (bytes(19), "truncated"),
        (packet(1, b"", length=19), "bad length"),
        (packet(1, b"", length=4097), "bad length"),
        (packet(1, b"", length=21), "truncated"),
    ],
)
def test_parse_header_rejects_bad_lengths(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket) as caught:
        parse_header(data)
    assert caught.value.reason == reason


def _filler(octets: int) -> bytes:
    """Proxy-State attributes that take exactly ``octets`` octets (at least 2 left over)."""
    body = b""
    while octets - len(body) > 255:
        body += attr(33, bytes(253))
    return body + attr(33, bytes(octets - len(body) - 2))


def test_a_request_of_exactly_4096_octets_is_decoded() -> None:
    # RFC 2865 §3: 4096 is the largest packet, not the first too large one.
    raw = packet(1, NAME + PASSWORD + _filler(4096 - 20 - len(NAME + PASSWORD)))
    assert len(raw) == MAX_PACKET_LENGTH
    request = decode_request(raw, SECRET)
    assert (request.user_name, request.password, request.length) == ("alice", b"secret", 4096)
    assert sum(len(state) + 2 for state in request.proxy_states) == 4096 - 45


def test_a_reply_of_exactly_4096_octets_is_encoded() -> None:
    states = _filler(4096 - 20 - 18)
    proxy_states = []
    while states:
        proxy_states.append(states[2 : states[1]])
        states = states[states[1] :]
    request = replace(_request(), proxy_states=tuple(proxy_states))
    raw = encode_reply(request, Codes.ACCESS_REJECT, SECRET)
    assert len(raw) == MAX_PACKET_LENGTH
    assert decode_reply(raw, SECRET, request.authenticator).proxy_states == request.proxy_states


def test_the_attributes_the_log_and_the_challenge_read_are_decoded() -> None:
    attributes = (
        MA_ZERO + NAME + PASSWORD + attr(24, b"\x00state\xff") + attr(32, b"nas-\xff1")
        + attr(31, b"00-11-22-33-44-55") + attr(4, bytes((192, 0, 2, 7)))
        + attr(79, b"\x02\x01\x00\x05\x01")
    )  # fmt: skip
    request = decode_request(signed(1, attributes), SECRET)
    assert request.state == b"\x00state\xff"
    assert request.nas_identifier == "nas-\ufffd1"  # not UTF-8: shown, not refused
    assert request.calling_station_id == "00-11-22-33-44-55"
    assert request.nas_ip == "192.0.2.7"
    assert request.has_eap
    assert request.message_authenticator_valid
    plain = decode_request(packet(1, NAME + PASSWORD), SECRET)
    assert (plain.state, plain.nas_identifier, plain.calling_station_id) == (None, None, None)
    assert not plain.has_eap
    assert not plain.has_message_authenticator


@pytest.mark.parametrize("password", [b"X", b"pass\x00X", b"passXX", bytes(range(1, 17))])
def test_only_the_padding_nuls_are_taken_off_a_password(password: bytes) -> None:
    hidden = attr(2, hide_password(password, SECRET, AUTH))
    assert decode_request(packet(1, NAME + hidden), SECRET).password == password


def test_a_header_alone_is_a_whole_packet() -> None:
    assert parse_header(packet(1, b"")) == (1, 1)


def test_an_empty_password_is_hidden_in_one_block() -> None:
    # RFC 2865 §5.2: padded with NULs to a multiple of 16 octets, at least one block.
    hidden = hide_password(b"", SECRET, AUTH)
    assert len(hidden) == 16
    assert decode_request(packet(1, NAME + attr(2, hidden)), SECRET).password == b""


def test_octets_past_the_length_field_are_ignored() -> None:
    raw = signed(1, MA_ZERO + NAME + PASSWORD) + b"\xff" * 7
    assert parse_header(raw) == (1, 1)
    request = decode_request(raw, SECRET)
    assert request.length == len(raw) - 7
    assert request.message_authenticator_valid
    assert request.password == b"secret"


# --- malformed requests --------------------------------------------------------------------------


MALFORMED = [
    (packet(99, NAME), "unknown code 99"),
    (packet(0, NAME), "unknown code 0"),
    (packet(2, NAME), "not a request"),
    (packet(1, b"\x01"), "bad attribute length"),
    (packet(1, b"\x01\x00"), "bad attribute length"),
    (packet(1, b"\x01\x01"), "bad attribute length"),
    (packet(1, b"\x01\x09abc"), "bad attribute length"),
    (packet(1, NAME + NAME), "duplicate user-name"),
    (packet(1, PASSWORD + PASSWORD), "duplicate user-password"),
    (packet(1, attr(24, b"a") + attr(24, b"b")), "duplicate state"),
    (packet(1, MA_ZERO + MA_ZERO), "duplicate message-authenticator"),
    (packet(1, attr(80, bytes(15))), "bad message-authenticator length"),
    (packet(1, attr(80, bytes(17))), "bad message-authenticator length"),
    (packet(1, attr(2, b"")), "bad user-password length"),
    (packet(1, attr(2, bytes(15))), "bad user-password length"),
    (packet(1, attr(2, bytes(17))), "bad user-password length"),
    (packet(1, attr(2, bytes(144))), "bad user-password length"),
    (packet(1, attr(4, b"\x0a\x00\x00")), "bad nas-ip-address length"),
]


@pytest.mark.parametrize(
    ("data", "reason"),
    MALFORMED,
    ids=[f"{n}-{reason}" for n, (_data, reason) in enumerate(MALFORMED)],
)
def test_malformed_requests_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket) as caught:
        decode_request(data, SECRET)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("code", "name"), [(4, "Accounting-Request"), (43, "CoA-Request"), (2, "Access-Accept")]
)
def test_a_radius_packet_of_another_kind_is_named_not_called_unknown(code: int, name: str) -> None:
    with pytest.raises(UnexpectedCode) as caught:
        decode_request(packet(code, NAME), SECRET)
    assert caught.value.name == name


def test_a_user_name_that_is_not_utf8_decodes_flagged_and_escaped() -> None:
    request = decode_request(packet(1, attr(1, "たろう".encode("shift_jis"))), SECRET)
    assert not request.user_name_utf8
    assert request.user_name == "\\x82\\xbd\\x82\\xeb\\x82\\xa4"
    assert decode_request(packet(1, attr(1, "たろう".encode())), SECRET).user_name_utf8


# --- passwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [b"x", b"sixteen octets!!", b"seventeen octets!", "ü".encode() * 64, b"\xff\xfe\x80bad"],
    ids=["1", "16", "17", "128", "invalid-utf8"],
)
def test_password_survives_as_raw_bytes(password: bytes) -> None:
    raw = encode_request(SECRET, user_name="alice", password=password)
    assert decode_request(raw, SECRET).password == password


def test_password_is_not_in_repr() -> None:
    request = decode_request(encode_request(SECRET, user_name="a", password="hunter2"), SECRET)
    assert "hunter2" not in repr(request)
    assert "password" not in repr(request)


def test_password_over_128_octets_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="128"):
        encode_request(SECRET, password=bytes(129))


# --- Message-Authenticator -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [MA_ZERO + NAME + PASSWORD, NAME + MA_ZERO + PASSWORD, NAME + PASSWORD + MA_ZERO],
    ids=["first", "middle", "last"],
)
def test_message_authenticator_is_verified_wherever_it_stands(attributes: bytes) -> None:
    request = decode_request(signed(1, attributes), SECRET)
    assert request.has_message_authenticator
    assert request.message_authenticator_valid
    assert not decode_request(signed(1, attributes), b"other-secret").message_authenticator_valid


def test_message_authenticator_signed_with_another_secret_is_invalid() -> None:
    raw = signed(1, MA_ZERO + NAME + PASSWORD, secret=b"other-secret")
    assert not decode_request(raw, SECRET).message_authenticator_valid


# --- CHAP detection ------------------------------------------------------------------------------

MICROSOFT = (311).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("attributes", "has_chap"),
    [
        (NAME + attr(3, bytes(17)), True),
        (NAME + attr(26, MICROSOFT + attr(25, bytes(50))), True),
        (NAME + attr(26, MICROSOFT + attr(11, bytes(16)) + attr(1, bytes(50))), True),
        (NAME + attr(26, MICROSOFT + attr(7, bytes(4))), False),
        (NAME + attr(26, (9).to_bytes(4, "big") + attr(25, bytes(4))), False),
        (NAME + attr(26, MICROSOFT[:3]), False),
        (NAME + attr(26, MICROSOFT + attr(7, bytes(4)) + attr(8, b"") + attr(25, bytes(50))), True),
        (NAME + attr(26, MICROSOFT + attr(25, b"")), True),
        (NAME + attr(26, MICROSOFT + bytes((7, 1)) + attr(25, bytes(50))), False),
        (NAME + attr(26, MICROSOFT + bytes((7, 0)) + attr(25, bytes(50))), False),
        (NAME + attr(26, MICROSOFT + attr(7, bytes(4)) + bytes((25,))), False),
        (NAME + PASSWORD, False),
    ],
    ids=[
        "chap", "ms-chap2", "ms-chap", "ms-other", "other-vendor", "short-vsa", "ms-chap2-third",
        "ms-chap2-empty", "after-a-too-short-length", "after-a-zero-length", "cut-short", "pap",
    ],
)  # fmt: skip
def test_chap_and_ms_chap_are_detected(attributes: bytes, has_chap: bool) -> None:
    assert decode_request(packet(1, attributes), SECRET).has_chap is has_chap


# --- replies -------------------------------------------------------------------------------------


def _request(password: str | None = None, proxy_states: tuple[bytes, ...] = ()) -> Request:
    raw = encode_request(SECRET, user_name="alice", password=password, proxy_states=proxy_states)
    return decode_request(raw, SECRET)


def test_reply_puts_message_authenticator_first_then_state_message_and_proxy_states() -> None:
    request = _request("pw", (b"first", b"", b"third"))
    assert request.proxy_states == (b"first", b"", b"third")
    raw = encode_reply(request, Codes.ACCESS_CHALLENGE, SECRET, reply_message="Serial?", state=b"s")
    reply = decode_reply(raw, SECRET, request.authenticator)
    assert reply.attribute_types == (80, 24, 18, 33, 33, 33)
    assert (reply.state, reply.reply_message) == (b"s", "Serial?")
    assert reply.proxy_states == (b"first", b"", b"third")
    assert reply.message_authenticator_valid
    assert reply.response_authenticator_valid
    assert reply.identifier == request.identifier


def test_reply_checked_against_the_wrong_request_fails_both_checks() -> None:
    request = _request(password="pw")
    raw = encode_reply(request, Codes.ACCESS_REJECT, SECRET)
    reply = decode_reply(raw, SECRET, bytes(16))
    assert not reply.message_authenticator_valid
    assert not reply.response_authenticator_valid


def test_long_reply_message_is_split_on_character_boundaries() -> None:
    message = "ワンタイムパスワード" * 30  # 900 octets of 3-octet characters
    raw = encode_reply(_request(), Codes.ACCESS_REJECT, SECRET, reply_message=message)
    chunks = []
    pos = 20
    while pos < len(raw):
        kind, size = raw[pos], raw[pos + 1]
        if kind == Attr.REPLY_MESSAGE:
            chunks.append(raw[pos + 2 : pos + size])
        pos += size
    assert len(chunks) == 4
    assert all(len(chunk) <= 253 for chunk in chunks)
    assert "".join(chunk.decode("utf-8") for chunk in chunks) == message


def test_reply_code_must_be_a_reply() -> None:
    with pytest.raises(ValueError, match="reply code"):
        encode_reply(_request(), Codes.STATUS_SERVER, SECRET)


def test_reply_that_would_exceed_4096_octets_is_refused() -> None:
    request = _request(proxy_states=(bytes(253),) * 15)
    with pytest.raises(ValueError, match="4096"):
        encode_reply(request, Codes.ACCESS_REJECT, SECRET, reply_message="x" * 300)


def test_empty_reply_message_adds_no_attribute() -> None:
    raw = encode_reply(_request(), Codes.ACCESS_ACCEPT, SECRET, reply_message="")
    assert decode_reply(raw, SECRET, raw[4:20]).attribute_types == (80,)


# --- interoperability with pyrad (an independent implementation, used here as an oracle) ---------


def test_pyrad_request_with_multiblock_password_decodes() -> None:
    from pyrad.dictionary import Dictionary
    from pyrad.packet import AuthPacket

    password = "パスワード-with-several-blocks".encode() * 2
    sent = AuthPacket(
        id=5,
        secret=SECRET,
        dict=Dictionary(str(ROOT / "radiusd" / "dictionary")),
        message_authenticator=True,
    )
    sent["User-Name"] = "alice"
    sent["User-Password"] = sent.PwCrypt(password)
    sent["Proxy-State"] = [b"one", b"two"]
    request = decode_request(sent.RequestPacket(), SECRET)
    assert request.password == password
    assert request.message_authenticator_valid
    assert request.proxy_states == (b"one", b"two")


def test_pyrad_accepts_our_reply() -> None:
    from pyrad.dictionary import Dictionary
    from pyrad.packet import AuthPacket, Packet

    dictionary = Dictionary(str(ROOT / "radiusd" / "dictionary"))
    sent = AuthPacket(id=9, secret=SECRET, dict=dictionary, message_authenticator=True)
    sent["User-Name"] = "alice"
    sent["Proxy-State"] = [b"p1"]
    request = decode_request(sent.RequestPacket(), SECRET)
    raw = encode_reply(request, Codes.ACCESS_CHALLENGE, SECRET, reply_message="OTP?", state=b"st")
    received = Packet(packet=raw, secret=SECRET, dict=dictionary)
    assert sent.VerifyReply(received, raw, enforce_ma=True)


# --- dictionary ----------------------------------------------------------------------------------


def test_packaged_dictionary_matches_the_dictionaries_folder() -> None:
    packaged = (ROOT / "radiusd" / "dictionary").read_bytes()
    assert packaged == (ROOT / "dictionaries" / "dictionary").read_bytes()


def test_dictionary_names_agree_with_the_codes_in_use() -> None:
    for member in Attr:
        assert attribute_name(member.value).upper().replace("-", "_") == member.name
    assert attribute_name(25, vendor=311) == "MS-CHAP2-Response"
    assert attribute_name(200) == "Attr-200"
    assert attribute_name(200, vendor=9) == "Vendor-9-Attr-200"


# --- properties ----------------------------------------------------------------------------------


def _decode_or_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedPacket):
        decode_request(data, SECRET)


@given(st.binary(max_size=MAX_PACKET_LENGTH + 10))
def test_random_bytes_only_ever_raise_malformed_packet(data: bytes) -> None:
    _decode_or_malformed(data)


@given(st.sampled_from([1, 12]), st.binary(max_size=400))
def test_random_attributes_only_ever_raise_malformed_packet(code: int, body: bytes) -> None:
    # A correct header sends the random octets through the attribute walk, not the length check.
    _decode_or_malformed(packet(code, body))


valid_requests = st.builds(
    lambda name, password, states: encode_request(
        SECRET, user_name=name, password=password, proxy_states=states, state=b"st"
    ),
    st.text(min_size=1, max_size=60),
    st.binary(min_size=1, max_size=128),
    st.lists(st.binary(max_size=40), max_size=3),
)


@given(valid_requests, st.data())
def test_mutated_requests_only_raise_malformed_packet(raw: bytes, data: st.DataObject) -> None:
    mutable = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutable) - 1))
        mutable[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutable)))
    _decode_or_malformed(bytes(mutable[:cut]))
    _decode_or_malformed(bytes(mutable))


# RFC 2865 pads with NULs, so a password's own trailing NULs cannot survive the trip.
passwords = (
    st.text(min_size=1, max_size=128).map(str.encode).filter(lambda b: len(b) <= 128 and b[-1] != 0)
)


@given(passwords, st.integers(0, 255), st.binary(min_size=16, max_size=16))
def test_any_utf8_password_round_trips(password: bytes, identifier: int, auth: bytes) -> None:
    raw = encode_request(
        SECRET, user_name="u", password=password, identifier=identifier, authenticator=auth
    )
    request = decode_request(raw, SECRET)
    assert request.password == password
    assert request.password.decode("utf-8") == password.decode("utf-8")
    assert (request.identifier, request.authenticator) == (identifier, auth)
    assert request.message_authenticator_valid


@given(valid_requests, st.data())
def test_a_flipped_bit_breaks_the_message_authenticator(raw: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    mutated = bytearray(raw)
    mutated[bit // 8] ^= 1 << (bit % 8)
    try:
        request = decode_request(bytes(mutated), SECRET)
    except MalformedPacket:
        return
    assert not request.message_authenticator_valid


# The identity a request and its resends share


def _identity(client: str = "vpn", **fields: object) -> bytes:
    packet = {"user_name": "taro", "password": "123456", "authenticator": bytes(16), **fields}
    return decode_request(encode_request(SECRET, **packet), SECRET).identity(client)  # type: ignore[arg-type]


def test_a_resent_datagram_has_the_same_identity() -> None:
    assert _identity() == _identity()
    assert len(_identity()) == 16


def test_the_identity_depends_on_the_password_only_as_hidden() -> None:
    # Stored beside the step it used, it must not be a fast hash of the typed password: the
    # same password under another secret (which a reader of the database lacks) differs.
    other = b"another shared secret"
    packet = {"user_name": "taro", "password": "123456", "authenticator": bytes(16)}
    under_other = decode_request(encode_request(other, **packet), other).identity("vpn")  # type: ignore[arg-type]
    assert under_other != _identity()


@pytest.mark.parametrize(
    "change",
    [
        {"client": "kiosk"},
        {"user_name": "hanako"},
        {"password": "654321"},
        {"authenticator": bytes(range(16))},
    ],
    ids=["client", "login", "password", "authenticator"],
)
def test_another_client_login_password_or_authenticator_is_another_request(
    change: dict[str, object],
) -> None:
    assert _identity(**change) != _identity()  # type: ignore[arg-type]
