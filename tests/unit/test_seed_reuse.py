"""An import's seeds against the inventory's: the first repeat, as HMAC would see it."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from otpcore.model import Algorithm
from otpcore.seed_reuse import first_reuse
from otpcore.token_csv import TokenSpec
from otpcore.totp import hotp

LONG = bytes(range(100))  # longer than SHA-1's block: HMAC keys with its hash
POOL = [
    bytes(range(1, 21)),
    bytes(range(1, 21)) + bytes(12),
    LONG,
    hashlib.sha1(LONG, usedforsecurity=False).digest(),
    LONG + bytes(3),  # padded before hashing: another key, but the same material
    bytes(range(40, 60)),
    bytes(range(40, 60))[::-1],
]


def repeated(one: bytes, other: bytes) -> bool:
    """The oracle: the same eight-digit codes at a few counters, or the same bytes padded."""
    codes = [(hotp(one, c, 8, Algorithm.SHA1), hotp(other, c, 8, Algorithm.SHA1)) for c in range(4)]
    return all(a == b for a, b in codes) or one.rstrip(b"\0") == other.rstrip(b"\0")


@given(
    # None: a row of an update that keeps the token's seed, which shares nothing.
    chosen=st.lists(st.sampled_from([*POOL, None]), max_size=5),
    held=st.lists(st.sampled_from(POOL), max_size=5),
)
def test_the_first_spec_repeating_a_held_seed_is_found(
    chosen: list[bytes | None], held: list[bytes]
) -> None:
    specs = [TokenSpec(f"N{i}", seed, line=i + 2) for i, seed in enumerate(chosen)]
    inventory = [(f"H{i}", Algorithm.SHA1, seed) for i, seed in enumerate(held)]
    found = first_reuse(specs, inventory)
    clashing = [
        spec
        for spec in specs
        if spec.secret is not None and any(repeated(spec.secret, seed) for seed in held)
    ]
    if not clashing:
        assert found is None
        return
    assert found is not None
    spec, serial = found
    assert spec is clashing[0]
    assert spec.secret is not None
    # The serial named is the inventory's first with that seed, however many share it.
    assert serial == next(f"H{i}" for i, seed in enumerate(held) if repeated(spec.secret, seed))
