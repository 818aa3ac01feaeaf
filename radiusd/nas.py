"""A NAS's side of the RADIUS codec: requests built, replies decoded and checked.

The server never builds a request or reads a reply: bench/ and the tests use this module to speak
to it as a NAS would, and every reply decoded here has both its authenticators checked. The
layout both sides share is radiusd/wire.py.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from radiusd.hiding import BLOCK, hide_password, mac_matches, response_authenticator
from radiusd.wire import (
    MAC_PLACEHOLDER,
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

_KNOWN_CODES: Final = frozenset(int(c) for c in Codes)


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
    if code not in REQUEST_CODES:
        raise ValueError("not a request code")
    identifier = secrets.randbelow(256) if identifier is None else identifier
    authenticator = secrets.token_bytes(BLOCK) if authenticator is None else authenticator
    if len(authenticator) != BLOCK:
        raise ValueError("authenticator must be 16 octets")
    parts = [MAC_PLACEHOLDER] if message_authenticator else []
    if user_name is not None:
        parts.append(attribute(Attr.USER_NAME, user_name.encode("utf-8")))
    if password is not None:
        clear = password.encode("utf-8") if isinstance(password, str) else password
        parts.append(attribute(Attr.USER_PASSWORD, hide_password(clear, secret, authenticator)))
    if state is not None:
        parts.append(attribute(Attr.STATE, state))
    if nas_identifier is not None:
        parts.append(attribute(Attr.NAS_IDENTIFIER, nas_identifier.encode("utf-8")))
    parts.extend(attribute(kind, value) for kind, value in extra_attributes)
    parts.extend(attribute(Attr.PROXY_STATE, value) for value in proxy_states)
    draft = assemble(code, identifier, authenticator, b"".join(parts))
    return seal(draft, secret) if message_authenticator else draft


def decode_reply(data: bytes, secret: bytes, request_authenticator: bytes) -> Reply:
    """Decode a reply to a request with `request_authenticator`, checking both authenticators."""
    raw_code, identifier, length, authenticator = unpack_header(data)
    code = REPLY_CODES.get(raw_code)
    if code is None:
        raise MalformedPacket("unknown code" if raw_code not in _KNOWN_CODES else "not a reply")
    attributes = split_attributes(data, length)
    packet = data[:length]
    messages = [data[a:b] for kind, a, b in attributes if kind == Attr.REPLY_MESSAGE]
    states = [data[a:b] for kind, a, b in attributes if kind == Attr.STATE]
    macs = [a for kind, a, b in attributes if kind == Attr.MESSAGE_AUTHENTICATOR and b - a == BLOCK]
    expected = response_authenticator(packet, request_authenticator, secret)
    return Reply(
        code=code,
        identifier=identifier,
        reply_message=b"".join(messages).decode("utf-8", "replace") if messages else None,
        state=states[0] if states else None,
        proxy_states=tuple(data[a:b] for kind, a, b in attributes if kind == Attr.PROXY_STATE),
        attribute_types=tuple(kind for kind, _a, _b in attributes),
        message_authenticator_valid=len(macs) == 1
        and mac_matches(packet, macs[0], request_authenticator, secret),
        response_authenticator_valid=hmac.compare_digest(expected, authenticator),
    )
