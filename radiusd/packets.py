"""RADIUS datagrams <-> typed values (RFC 2865, 2869, 3579, 5997); the only module using pyrad.

Requests are parsed by hand: every length is checked before it is trusted, User-Password is
decrypted to raw bytes (pyrad's decoder silently drops invalid UTF-8) and Message-Authenticator is
verified wherever it stands. Anything structurally wrong raises MalformedPacket, and nothing else
escapes decode_request, so the server can count the packet, log the reason and drop it.
pyrad only supplies attribute names from the package dictionary; its Packet never leaves here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any, Final

from pyrad.dictionary import Dictionary

from radiusd.hiding import hide_password, mac_matches, response_authenticator, reveal_password

HEADER_LENGTH: Final = 20
MAX_PACKET_LENGTH: Final = 4096
MAX_VALUE_LENGTH: Final = 253
MAX_PASSWORD_LENGTH: Final = 128
_HEADER = struct.Struct("!BBH16s")
_LENGTH_FIELD = struct.Struct("!H")
_BLOCK: Final = 16
_ZERO_MAC: Final = bytes(16)
_MICROSOFT: Final = (311).to_bytes(4, "big")
_MS_CHAP_TYPES: Final = frozenset({1, 11, 25})  # MS-CHAP-Response, -Challenge, MS-CHAP2-Response


class Codes(IntEnum):
    """RADIUS packet codes otpradius sends or accepts."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12


class Attr(IntEnum):
    """Attribute types otpradius reads or writes (names as in radiusd/dictionary)."""

    USER_NAME = 1
    USER_PASSWORD = 2
    CHAP_PASSWORD = 3
    NAS_IP_ADDRESS = 4
    REPLY_MESSAGE = 18
    STATE = 24
    VENDOR_SPECIFIC = 26
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80


# Plain ints for the decode loop: comparing against enum members costs an attribute lookup each.
_USER_NAME: Final = int(Attr.USER_NAME)
_USER_PASSWORD: Final = int(Attr.USER_PASSWORD)
_CHAP_PASSWORD: Final = int(Attr.CHAP_PASSWORD)
_NAS_IP_ADDRESS: Final = int(Attr.NAS_IP_ADDRESS)
_STATE: Final = int(Attr.STATE)
_VENDOR_SPECIFIC: Final = int(Attr.VENDOR_SPECIFIC)
_CALLING_STATION_ID: Final = int(Attr.CALLING_STATION_ID)
_NAS_IDENTIFIER: Final = int(Attr.NAS_IDENTIFIER)
_PROXY_STATE: Final = int(Attr.PROXY_STATE)
_EAP_MESSAGE: Final = int(Attr.EAP_MESSAGE)
_MESSAGE_AUTHENTICATOR: Final = int(Attr.MESSAGE_AUTHENTICATOR)
_REQUEST_CODES: Final = {int(c): c for c in (Codes.ACCESS_REQUEST, Codes.STATUS_SERVER)}
_REPLY_CODES: Final = {
    int(c): c for c in (Codes.ACCESS_ACCEPT, Codes.ACCESS_REJECT, Codes.ACCESS_CHALLENGE)
}
_KNOWN_CODES: Final = frozenset(int(c) for c in Codes)
# Other RADIUS packets a NAS may send here by mistake (RFC 2866, 5176, 5997): well formed, only
# not for this port. Named in the log, so an operator sees which setting of the NAS to fix.
_OTHER_CODES: Final = {
    2: "Access-Accept",
    3: "Access-Reject",
    4: "Accounting-Request",
    5: "Accounting-Response",
    11: "Access-Challenge",
    13: "Status-Client",
    40: "Disconnect-Request",
    41: "Disconnect-ACK",
    42: "Disconnect-NAK",
    43: "CoA-Request",
    44: "CoA-ACK",
    45: "CoA-NAK",
}
_MAC_PLACEHOLDER: Final = bytes((_MESSAGE_AUTHENTICATOR, 2 + _BLOCK)) + _ZERO_MAC


class MalformedPacket(Exception):
    """A datagram that is not a well-formed RADIUS packet; `reason` is short and secret-free."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnexpectedCode(MalformedPacket):
    """A RADIUS packet of a kind this server does not serve; `name` is its code's name."""

    def __init__(self, name: str) -> None:
        super().__init__("not a request")
        self.name = name


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded Access-Request or Status-Server; the caller checks password UTF-8 validity."""

    code: Codes
    identifier: int
    authenticator: bytes
    length: int
    user_name: str | None
    password: bytes | None = field(repr=False)
    state: bytes | None
    proxy_states: tuple[bytes, ...]
    has_message_authenticator: bool
    message_authenticator_valid: bool
    has_chap: bool
    nas_identifier: str | None
    nas_ip: str | None
    calling_station_id: str | None
    has_eap: bool = False
    # False when User-Name was not UTF-8: user_name then shows its non-ASCII octets escaped,
    # for the log only, and the request is refused rather than looked up.
    user_name_utf8: bool = True
    hidden_password: bytes | None = field(default=None, repr=False)  # as on the wire

    def identity(self, client_name: str) -> bytes:
        """16 bytes naming this request and its resends: its client, login, authenticator and
        User-Password as sent.

        The authenticator alone is not enough: it travels in clear, so another packet could
        carry it with another password, or another client could send it. The password is
        taken as hidden on the wire, not as typed: the identity is stored with the step it
        used, and a hash of the typed password beside the authenticator (which anyone who
        saw the packet has) would let a reader of the database test passwords at the speed of
        SHA-256. So a resend is known only under the same shared secret (README: every node
        holds the same secret for a client).
        """
        digest = hashlib.sha256()
        for part in (client_name.encode(), (self.user_name or "").encode()):
            digest.update(len(part).to_bytes(4, "big") + part)
        digest.update(self.authenticator + (self.hidden_password or b""))
        return digest.digest()[:16]


@dataclass(frozen=True, slots=True)
class Reply:
    """A decoded reply, as a client (or a test) sees it."""

    code: Codes
    identifier: int
    reply_message: str | None
    state: bytes | None
    proxy_states: tuple[bytes, ...]
    attribute_types: tuple[int, ...]
    message_authenticator_valid: bool
    response_authenticator_valid: bool


def parse_header(data: bytes) -> tuple[int, int]:
    """Return (code, identifier) after checking only the length rules of RFC 2865 §3."""
    code, identifier, _length, _authenticator = _header(data)
    return code, identifier


def _header(data: bytes) -> tuple[int, int, int, bytes]:
    if len(data) < HEADER_LENGTH:
        raise MalformedPacket("truncated")
    code, identifier, length, authenticator = _HEADER.unpack_from(data)
    if length < HEADER_LENGTH or length > MAX_PACKET_LENGTH:
        raise MalformedPacket("bad length")
    if length > len(data):
        raise MalformedPacket("truncated")
    # Octets past `length` are padding per RFC 2865 §3 and are ignored by every caller.
    return code, identifier, length, authenticator


def _attributes(data: bytes, end: int) -> list[tuple[int, int, int]]:
    """Split data[20:end] into (type, value start, value end), checking every length."""
    found: list[tuple[int, int, int]] = []
    pos = HEADER_LENGTH
    while pos < end:
        if end - pos < 2:
            raise MalformedPacket("bad attribute length")
        size = data[pos + 1]
        if size < 2 or pos + size > end:
            raise MalformedPacket("bad attribute length")
        found.append((data[pos], pos + 2, pos + size))
        pos += size
    return found


def decode_request(data: bytes, secret: bytes) -> Request:
    """Decode and verify a request datagram; raise MalformedPacket (only) when it is malformed."""
    raw_code, identifier, length, authenticator = _header(data)
    code = _REQUEST_CODES.get(raw_code)
    if code is None:
        name = _OTHER_CODES.get(raw_code)
        raise MalformedPacket("unknown code") if name is None else UnexpectedCode(name)
    user_name: str | None = None
    user_name_utf8 = True
    cipher: bytes | None = None
    state: bytes | None = None
    mac_at = -1
    proxy_states: list[bytes] = []
    has_chap = False
    has_eap = False
    nas_identifier: str | None = None
    nas_ip: str | None = None
    calling_station_id: str | None = None
    for kind, start, stop in _attributes(data, length):
        if kind == _USER_NAME:
            if user_name is not None:
                raise MalformedPacket("duplicate user-name")
            user_name, user_name_utf8 = _user_name(data[start:stop])
        elif kind == _USER_PASSWORD:
            if cipher is not None:
                raise MalformedPacket("duplicate user-password")
            cipher = data[start:stop]
        elif kind == _MESSAGE_AUTHENTICATOR:
            if mac_at >= 0:
                raise MalformedPacket("duplicate message-authenticator")
            if stop - start != _BLOCK:
                raise MalformedPacket("bad message-authenticator length")
            mac_at = start
        elif kind == _STATE:
            if state is not None:
                raise MalformedPacket("duplicate state")
            state = data[start:stop]
        elif kind == _PROXY_STATE:
            proxy_states.append(data[start:stop])
        elif kind == _CHAP_PASSWORD:
            has_chap = True
        elif kind == _EAP_MESSAGE:
            has_eap = True
        elif kind == _VENDOR_SPECIFIC:
            has_chap = has_chap or _is_ms_chap(data[start:stop])
        elif kind == _NAS_IDENTIFIER:
            nas_identifier = data[start:stop].decode("utf-8", "replace")
        elif kind == _CALLING_STATION_ID:
            calling_station_id = data[start:stop].decode("utf-8", "replace")
        elif kind == _NAS_IP_ADDRESS:
            nas_ip = _ipv4(data[start:stop])
    password = None if cipher is None else _reveal_password(cipher, secret, authenticator)
    return Request(
        code=code,
        identifier=identifier,
        authenticator=authenticator,
        length=length,
        user_name=user_name,
        password=password,
        state=state,
        proxy_states=tuple(proxy_states),
        has_message_authenticator=mac_at >= 0,
        message_authenticator_valid=mac_at >= 0
        and mac_matches(data[:length], mac_at, authenticator, secret),
        has_chap=has_chap,
        has_eap=has_eap,
        user_name_utf8=user_name_utf8,
        nas_identifier=nas_identifier,
        nas_ip=nas_ip,
        calling_station_id=calling_station_id,
        hidden_password=cipher,
    )


def _user_name(value: bytes) -> tuple[str, bool]:
    """The User-Name as text, and whether it was UTF-8 (if not, non-ASCII octets are escaped)."""
    try:
        return value.decode("utf-8"), True
    except UnicodeDecodeError:
        # RFC 8044 "text" is UTF-8, but the NAS passes on whatever octets the user's client
        # sent (an old one typing Shift_JIS). Such a request is well formed: it is answered
        # with a Reject, as a password that is not UTF-8 is. Dropped, it went unanswered, and
        # a NAS whose requests go unanswered takes the server for dead and fails over, or
        # falls back to its local accounts: anyone at the login page could do that at will.
        return value.decode("ascii", "backslashreplace"), False


def _ipv4(value: bytes) -> str:
    if len(value) != 4:
        raise MalformedPacket("bad nas-ip-address length")
    return socket.inet_ntoa(value)


def _is_ms_chap(value: bytes) -> bool:
    """Tell whether a Vendor-Specific value carries a Microsoft MS-CHAP sub-attribute."""
    if value[:4] != _MICROSOFT:
        return False
    pos = 4
    # Only a hint for the "PAP required" reply: a broken sub-attribute ends the walk, not the
    # packet, because vendors other than Microsoft may use other layouts.
    while pos + 2 <= len(value):
        if value[pos] in _MS_CHAP_TYPES:
            return True
        size = value[pos + 1]
        if size < 2:
            return False
        pos += size
    return False


def _reveal_password(cipher: bytes, secret: bytes, authenticator: bytes) -> bytes:
    if len(cipher) < _BLOCK or len(cipher) > MAX_PASSWORD_LENGTH or len(cipher) % _BLOCK:
        raise MalformedPacket("bad user-password length")
    # The sender pads with NULs to a 16-octet boundary; trailing NULs are not part of a password.
    return reveal_password(cipher, secret, authenticator).rstrip(b"\x00")


def _attribute(kind: int, value: bytes) -> bytes:
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"attribute {kind} longer than {MAX_VALUE_LENGTH} octets")
    return bytes((kind, len(value) + 2)) + value


def _text_chunks(text: str) -> list[bytes]:
    """Split UTF-8 text into attribute-sized pieces without cutting a character in two."""
    encoded = text.encode("utf-8")
    chunks: list[bytes] = []
    while encoded:
        cut = min(len(encoded), MAX_VALUE_LENGTH)
        # Step back over continuation octets (0b10xxxxxx) so each piece decodes on its own.
        while cut < len(encoded) and encoded[cut] & 0xC0 == 0x80:
            cut -= 1
        chunks.append(encoded[:cut])
        encoded = encoded[cut:]
    return chunks


def _assemble(code: int, identifier: int, authenticator: bytes, body: bytes) -> bytes:
    if HEADER_LENGTH + len(body) > MAX_PACKET_LENGTH:
        raise ValueError("packet longer than 4096 octets")
    return struct.pack("!BBH", code, identifier, HEADER_LENGTH + len(body)) + authenticator + body


def _seal(draft: bytes, secret: bytes) -> bytes:
    """Fill in the Message-Authenticator that leads the (zeroed) attributes of a draft packet."""
    mac = hmac.digest(secret, draft, "md5")
    return draft[: HEADER_LENGTH + 2] + mac + draft[HEADER_LENGTH + 2 + _BLOCK :]


def encode_reply(
    request: Request,
    code: Codes,
    secret: bytes,
    *,
    reply_message: str | None = None,
    state: bytes | None = None,
) -> bytes:
    """Build a reply: Message-Authenticator first, State, Reply-Message, then Proxy-State echoes."""
    if code not in _REPLY_CODES:
        raise ValueError("not a reply code")
    parts = [_MAC_PLACEHOLDER]
    if state is not None:
        parts.append(_attribute(_STATE, state))
    if reply_message:
        parts.extend(_attribute(Attr.REPLY_MESSAGE, chunk) for chunk in _text_chunks(reply_message))
    parts.extend(_attribute(_PROXY_STATE, value) for value in request.proxy_states)
    # RFC 3579 §3.2: a reply's MAC is computed with the Request Authenticator in the header.
    draft = _assemble(code, request.identifier, request.authenticator, b"".join(parts))
    sealed = _seal(draft, secret)
    return sealed[:4] + response_authenticator(sealed, request.authenticator, secret) + sealed[20:]


def encode_request(
    secret: bytes,
    *,
    code: Codes = Codes.ACCESS_REQUEST,
    user_name: str | None = None,
    password: bytes | str | None = None,
    state: bytes | None = None,
    proxy_states: Sequence[bytes] = (),
    nas_identifier: str | None = None,
    extra_attributes: Sequence[tuple[int, bytes]] = (),
    message_authenticator: bool = True,
    identifier: int | None = None,
    authenticator: bytes | None = None,
) -> bytes:
    """Build an Access-Request or Status-Server datagram (for tests, benchmarks and clients)."""
    if code not in _REQUEST_CODES:
        raise ValueError("not a request code")
    identifier = secrets.randbelow(256) if identifier is None else identifier
    authenticator = secrets.token_bytes(_BLOCK) if authenticator is None else authenticator
    if len(authenticator) != _BLOCK:
        raise ValueError("authenticator must be 16 octets")
    parts = [_MAC_PLACEHOLDER] if message_authenticator else []
    if user_name is not None:
        parts.append(_attribute(_USER_NAME, user_name.encode("utf-8")))
    if password is not None:
        clear = password.encode("utf-8") if isinstance(password, str) else password
        parts.append(_attribute(_USER_PASSWORD, hide_password(clear, secret, authenticator)))
    if state is not None:
        parts.append(_attribute(_STATE, state))
    if nas_identifier is not None:
        parts.append(_attribute(_NAS_IDENTIFIER, nas_identifier.encode("utf-8")))
    parts.extend(_attribute(kind, value) for kind, value in extra_attributes)
    parts.extend(_attribute(_PROXY_STATE, value) for value in proxy_states)
    draft = _assemble(code, identifier, authenticator, b"".join(parts))
    return _seal(draft, secret) if message_authenticator else draft


def decode_reply(data: bytes, secret: bytes, request_authenticator: bytes) -> Reply:
    """Decode a reply to a request with `request_authenticator`, checking both authenticators."""
    raw_code, identifier, length, authenticator = _header(data)
    code = _REPLY_CODES.get(raw_code)
    if code is None:
        raise MalformedPacket("unknown code" if raw_code not in _KNOWN_CODES else "not a reply")
    attributes = _attributes(data, length)
    packet = data[:length]
    messages = [data[a:b] for kind, a, b in attributes if kind == Attr.REPLY_MESSAGE]
    states = [data[a:b] for kind, a, b in attributes if kind == _STATE]
    macs = [a for kind, a, b in attributes if kind == _MESSAGE_AUTHENTICATOR and b - a == _BLOCK]
    expected = response_authenticator(packet, request_authenticator, secret)
    return Reply(
        code=code,
        identifier=identifier,
        reply_message=b"".join(messages).decode("utf-8", "replace") if messages else None,
        state=states[0] if states else None,
        proxy_states=tuple(data[a:b] for kind, a, b in attributes if kind == _PROXY_STATE),
        attribute_types=tuple(kind for kind, _a, _b in attributes),
        message_authenticator_valid=len(macs) == 1
        and mac_matches(packet, macs[0], request_authenticator, secret),
        response_authenticator_valid=hmac.compare_digest(expected, authenticator),
    )


@cache
def _dictionary() -> Any:
    # The dictionary ships as package data so an installed otpradius finds it without a path.
    text = resources.files("radiusd").joinpath("dictionary").read_text(encoding="utf-8")
    return Dictionary(io.StringIO(text))


def attribute_name(code: int, vendor: int = 0) -> str:
    """Return an attribute's dictionary name, or a FreeRADIUS-style Attr-N for unknown ones."""
    key: int | tuple[int, int] = code if vendor == 0 else (vendor, code)
    index = _dictionary().attrindex
    if index.HasBackward(key):
        return str(index.GetBackward(key))
    return f"Attr-{code}" if vendor == 0 else f"Vendor-{vendor}-Attr-{code}"
