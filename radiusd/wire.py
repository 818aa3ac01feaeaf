"""RADIUS packet layout both directions share (RFC 2865, 3579, 5997).

Packet codes and attribute types, the header and attribute framing with every length checked
before it is trusted, and a packet's assembly with its Message-Authenticator. The server's side
of the codec is radiusd/packets.py, a NAS's is radiusd/nas.py; both build on this.
"""

from __future__ import annotations

import hmac
import struct
from enum import IntEnum
from typing import Final

from radiusd.hiding import BLOCK, HEADER_LENGTH

MAX_PACKET_LENGTH: Final = 4096
MAX_VALUE_LENGTH: Final = 253
_HEADER = struct.Struct("!BBH16s")
_ZERO_MAC: Final = bytes(BLOCK)


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


REQUEST_CODES: Final = {int(c): c for c in (Codes.ACCESS_REQUEST, Codes.STATUS_SERVER)}
REPLY_CODES: Final = {
    int(c): c for c in (Codes.ACCESS_ACCEPT, Codes.ACCESS_REJECT, Codes.ACCESS_CHALLENGE)
}
MAC_PLACEHOLDER: Final = bytes((Attr.MESSAGE_AUTHENTICATOR, 2 + BLOCK)) + _ZERO_MAC


class MalformedPacket(Exception):
    """A datagram that is not a well-formed RADIUS packet; `reason` is short and secret-free."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_header(data: bytes) -> tuple[int, int]:
    """Return (code, identifier) after checking only the length rules of RFC 2865 §3."""
    code, identifier, _length, _authenticator = unpack_header(data)
    return code, identifier


def unpack_header(data: bytes) -> tuple[int, int, int, bytes]:
    """Return (code, identifier, length, authenticator) after checking the length rules."""
    if len(data) < HEADER_LENGTH:
        raise MalformedPacket("truncated")
    code, identifier, length, authenticator = _HEADER.unpack_from(data)
    if length < HEADER_LENGTH or length > MAX_PACKET_LENGTH:
        raise MalformedPacket("bad length")
    if length > len(data):
        raise MalformedPacket("truncated")
    # Octets past `length` are padding per RFC 2865 §3 and are ignored by every caller.
    return code, identifier, length, authenticator


def split_attributes(data: bytes, end: int) -> list[tuple[int, int, int]]:
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


def attribute(kind: int, value: bytes) -> bytes:
    """Return one attribute as it goes on the wire: type, length, value."""
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"attribute {kind} longer than {MAX_VALUE_LENGTH} octets")
    return bytes((kind, len(value) + 2)) + value


def assemble(code: int, identifier: int, authenticator: bytes, body: bytes) -> bytes:
    """Return a packet of a header and the attributes in `body`."""
    if HEADER_LENGTH + len(body) > MAX_PACKET_LENGTH:
        raise ValueError("packet longer than 4096 octets")
    return struct.pack("!BBH", code, identifier, HEADER_LENGTH + len(body)) + authenticator + body


def seal(draft: bytes, secret: bytes) -> bytes:
    """Fill in the Message-Authenticator that leads the (zeroed) attributes of a draft packet."""
    mac = hmac.digest(secret, draft, "md5")
    return draft[: HEADER_LENGTH + 2] + mac + draft[HEADER_LENGTH + 2 + BLOCK :]
