"""The MD5 constructions of RADIUS: User-Password hiding (RFC 2865 §5.2), the Response
Authenticator (RFC 2865 §3) and Message-Authenticator (RFC 3579 §3.2).

MD5 is what the RFCs prescribe; it is no choice of ours, and none of these stands alone as a
protection: the path between NAS and server must be private all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

BLOCK: Final = 16
MAX_PASSWORD_LENGTH: Final = 128
HEADER_LENGTH: Final = 20
_LENGTH_FIELD = struct.Struct("!H")
_ZERO_MAC: Final = bytes(BLOCK)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324 - the RFCs' construction


def _keystream_xor(blocks: bytes, secret: bytes, first: bytes, *, hiding: bool) -> bytes:
    """Apply the RFC 2865 §5.2 MD5 chain; each key block follows the previous ciphertext block."""
    out = bytearray()
    previous = first
    for i in range(0, len(blocks), BLOCK):
        block = blocks[i : i + BLOCK]
        mixed = int.from_bytes(block, "big") ^ int.from_bytes(_md5(secret + previous), "big")
        result = mixed.to_bytes(BLOCK, "big")
        out += result
        previous = result if hiding else block
    return bytes(out)


def reveal_password(cipher: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Return the padded clear text of a User-Password value whose length was checked."""
    return _keystream_xor(cipher, secret, authenticator, hiding=False)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Return the User-Password value for a password, per RFC 2865 §5.2."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError("password longer than 128 octets")
    # An empty password still occupies one block: the attribute value must be 16..128 octets.
    padding = -len(password) % BLOCK if password else BLOCK
    padded = password + bytes(padding)
    return _keystream_xor(padded, secret, authenticator, hiding=True)


def mac_matches(packet: bytes, mac_at: int, authenticator: bytes, secret: bytes) -> bool:
    """Check the Message-Authenticator value at mac_at, with `authenticator` in the header."""
    # RFC 3579 §3.2: HMAC-MD5 of the whole packet with the 16 MAC octets zeroed.
    zeroed = packet[:4] + authenticator + packet[20:mac_at] + _ZERO_MAC + packet[mac_at + BLOCK :]
    expected = hmac.digest(secret, zeroed, "md5")
    return hmac.compare_digest(expected, packet[mac_at : mac_at + BLOCK])


def response_authenticator(reply: bytes, request_authenticator: bytes, secret: bytes) -> bytes:
    """Return MD5(Code+ID+Length+RequestAuth+Attributes+Secret) for a reply (RFC 2865 §3)."""
    (length,) = _LENGTH_FIELD.unpack_from(reply, 2)
    return _md5(reply[:4] + request_authenticator + reply[HEADER_LENGTH:length] + secret)
