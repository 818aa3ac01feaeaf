"""The server's side of the RADIUS codec (RFC 2865, 2869, 3579, 5997); the only module using pyrad.

Requests are parsed by hand: every length is checked before it is trusted, User-Password is
decrypted to raw bytes (pyrad's decoder silently drops invalid UTF-8) and Message-Authenticator is
verified wherever it stands. Anything structurally wrong raises MalformedPacket, and nothing else
escapes decode_request, so the server can count the packet, log the reason and drop it.
The layout both directions share is radiusd/wire.py; a NAS's side of the codec, radiusd/nas.py.
pyrad only supplies attribute names from the package dictionary; its Packet never leaves here.
"""

from __future__ import annotations

import hashlib
import io
import socket
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

from pyrad.dictionary import Dictionary

from radiusd.hiding import (
    BLOCK,
    MAX_PASSWORD_LENGTH,
    mac_matches,
    response_authenticator,
    reveal_password,
)
from radiusd.wire import (
    MAC_PLACEHOLDER,
    MAX_VALUE_LENGTH,
    REPLY_CODES,
    REQUEST_CODES,
    Attr,
    Codes,
    MalformedPacket,
    assemble,
    attribute,
    seal,
    split_attributes,
    unpack_header,
)

_MICROSOFT: Final = (311).to_bytes(4, "big")
_MS_CHAP_TYPES: Final = frozenset({1, 11, 25})  # MS-CHAP-Response, -Challenge, MS-CHAP2-Response


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


def decode_request(data: bytes, secret: bytes) -> Request:
    """Decode and verify a request datagram; raise MalformedPacket (only) when it is malformed."""
    raw_code, identifier, length, authenticator = unpack_header(data)
    code = REQUEST_CODES.get(raw_code)
    if code is None:
        name = _OTHER_CODES.get(raw_code)
        raise MalformedPacket(f"unknown code {raw_code}") if name is None else UnexpectedCode(name)
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
    for kind, start, stop in split_attributes(data, length):
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
            if stop - start != BLOCK:
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
    if len(cipher) < BLOCK or len(cipher) > MAX_PASSWORD_LENGTH or len(cipher) % BLOCK:
        raise MalformedPacket("bad user-password length")
    # The sender pads with NULs to a 16-octet boundary; trailing NULs are not part of a password.
    return reveal_password(cipher, secret, authenticator).rstrip(b"\x00")


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


def encode_reply(
    request: Request,
    code: Codes,
    secret: bytes,
    *,
    reply_message: str | None = None,
    state: bytes | None = None,
) -> bytes:
    """Build a reply: Message-Authenticator first, State, Reply-Message, then Proxy-State echoes."""
    if code not in REPLY_CODES:
        raise ValueError("not a reply code")
    parts = [MAC_PLACEHOLDER]
    if state is not None:
        parts.append(attribute(_STATE, state))
    if reply_message:
        parts.extend(attribute(Attr.REPLY_MESSAGE, chunk) for chunk in _text_chunks(reply_message))
    parts.extend(attribute(_PROXY_STATE, value) for value in request.proxy_states)
    # RFC 3579 §3.2: a reply's MAC is computed with the Request Authenticator in the header.
    draft = assemble(code, request.identifier, request.authenticator, b"".join(parts))
    sealed = seal(draft, secret)
    return sealed[:4] + response_authenticator(sealed, request.authenticator, secret) + sealed[20:]


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
