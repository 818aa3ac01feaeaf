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


def hmac_key(secret: bytes, algorithm: Algorithm) -> bytes:
    """The key HMAC computes with for ``secret``, without the zero bytes it is padded with.

    HMAC hashes a key longer than the hash's block and pads a shorter one with zeros, so
    two seeds with the same such key show the same codes (RFC 2104 §2).
    """
    digest = _DIGESTS[algorithm]
    if len(secret) > digest().block_size:
        secret = digest(secret).digest()
    return secret.rstrip(b"\0")


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
    digits: int,
    algorithm: Algorithm,
    last_step: int = -1,
) -> int | None:
    """The step within ``window`` of ``step`` that ``code`` stands for, else None.

    ``step`` is the server's step now, and only ``step ± window`` is tried (SPEC §3): the
    window is always around the server's clock. A clock offset that a token's import
    declared (PSKC TimeDrift) is not applied, and none is learned from logins.

    Two steps of one token share a code about once in 10**digits. A step after
    ``last_step`` (not used yet) is preferred, the one nearest ``step`` first: a code that
    also matches a used step is still fresh, and one that also matches a future step does
    not use that step up (its own code would then be refused as a replay). Only when every
    match is used is the latest returned, for the caller to refuse. Every candidate is
    computed and compared in constant time, so the time taken does not depend on which step
    (if any) matched.
    """
    if len(code) != digits or not code.isascii() or not code.isdigit():
        return None
    matches: list[int] = []
    offered = code.encode("ascii")
    for candidate in range(max(0, step - window), step + window + 1):
        expected = hotp(secret, candidate, digits, algorithm).encode("ascii")
        if hmac.compare_digest(expected, offered):
            matches.append(candidate)
    fresh = [candidate for candidate in matches if candidate > last_step]
    if fresh:
        return min(fresh, key=lambda candidate: (abs(candidate - step), candidate))
    return max(matches, default=None)
