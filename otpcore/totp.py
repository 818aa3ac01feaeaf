"""TOTP (RFC 6238) over HOTP (RFC 4226): time steps, codes, and matching within a window."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from otpcore.model import Algorithm

_DIGESTS = {
    Algorithm.SHA1: hashlib.sha1,
    Algorithm.SHA256: hashlib.sha256,
    Algorithm.SHA512: hashlib.sha512,
}


def time_step(now: datetime, period: int) -> int:
    """The RFC 6238 counter T for an instant (T0 = 0); a naive datetime is refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("time_step needs a timezone-aware datetime, not a naive one")
    return int(now.timestamp()) // period


def hotp(secret: bytes, counter: int, digits: int, algorithm: Algorithm) -> str:
    """The HOTP value of ``counter``, zero-padded to ``digits``."""
    mac = hmac.new(secret, counter.to_bytes(8, "big"), _DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def totp(secret: bytes, now: datetime, period: int, digits: int, algorithm: Algorithm) -> str:
    """The TOTP code shown by a token at ``now``."""
    return hotp(secret, time_step(now, period), digits, algorithm)


def match_step(
    secret: bytes,
    code: str,
    *,
    step: int,
    window: int,
    drift: int,
    digits: int,
    algorithm: Algorithm,
) -> int | None:
    """The token step in ``step + drift ± window`` whose code equals ``code``, else None.

    Every candidate is computed and compared in constant time, so the time taken does not
    depend on which step (if any) matched.
    """
    if len(code) != digits or not code.isascii() or not code.isdigit():
        return None
    centre = step + drift
    found: int | None = None
    offered = code.encode("ascii")
    for candidate in range(max(0, centre - window), centre + window + 1):
        expected = hotp(secret, candidate, digits, algorithm).encode("ascii")
        # The latest matching step wins: a code colliding with an earlier, used step
        # must not turn a fresh code into a replay.
        if hmac.compare_digest(expected, offered):
            found = candidate
    return found
