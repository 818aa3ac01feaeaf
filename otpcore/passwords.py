"""Password hashing (argon2id) of login and confirmation passwords, and the check of an
imported hash: that it is an argon2 PHC string the server can verify, at a bounded cost.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from otpcore.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class HashingParams:
    """argon2id cost parameters (SPEC §6 ``[hashing]``)."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


class PasswordHashing:
    """argon2id hashing and verification of login and confirmation passwords."""

    def __init__(self, params: HashingParams) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        # A hash to verify against when the login is unknown, so both cost the same time;
        # made on first use, so commands that never authenticate do not pay for it.
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """An argon2id PHC string for the password."""
        if not password:
            raise InvalidInput("a password must not be empty")
        return self._hasher.hash(password)

    def verify(self, stored: str, offered: str) -> bool:
        """True when the offered password matches the stored hash."""
        try:
            return self._hasher.verify(stored, offered)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def burn(self, offered: str) -> None:
        """Spend the time of one verification, for an unknown login."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(os.urandom(16).hex())
        self.verify(self._dummy, offered)

    def needs_rehash(self, stored: str) -> bool:
        """True when the stored hash was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return False


# The most an imported hash may cost to verify: 1 GiB (libsodium's largest preset), four
# such passes, 16 lanes. Every login names a user, so a hash beyond this, from a careless or
# hostile migration file, would let anyone tie up a hash thread (and its memory) per request.
MAX_IMPORTED_MEMORY_KIB = 1 << 20
MAX_IMPORTED_WORK_KIB = 4 << 20  # memory times passes
MAX_IMPORTED_PARALLELISM = 16


# What the argon2 reference code decodes and then verifies: the parameters in this order,
# numbers without leading zeros, salt and hash in base64 without padding. A hash that parses
# more loosely imports a user who can never log in.
_PHC = re.compile(
    r"\$argon2(?:id|i|d)\$(?:v=(0|[1-9][0-9]*)\$)?"
    r"m=(0|[1-9][0-9]*),t=(0|[1-9][0-9]*),p=(0|[1-9][0-9]*)\$([^$]*)\$([^$]*)"
)
ARGON2_VERSIONS = (16, 19)  # 1.0 and 1.3, the only ones; a hash without v= is 1.0
MIN_SALT_BYTES = 8
MIN_TAG_BYTES = 4
MIN_MEMORY_PER_LANE_KIB = 8


def check_phc(value: str) -> str:
    """Validate an imported argon2 PHC string (``$argon2id$…``): verifiable, cost bounded."""
    # Messages name the column and what is wrong, never the hash: it is a password's.
    if not value.startswith(("$argon2id$", "$argon2i$", "$argon2d$")):
        raise InvalidInput("password_hash is not an argon2 PHC string")
    found = _PHC.fullmatch(value)
    if found is None:
        raise InvalidInput(
            "password_hash is not a valid argon2 PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)"
        )
    version = int(found[1] or ARGON2_VERSIONS[0])
    memory, passes, lanes = int(found[2]), int(found[3]), int(found[4])
    if version not in ARGON2_VERSIONS:
        raise InvalidInput(f"password_hash has version {version}; argon2 has 16 and 19")
    if passes < 1:
        raise InvalidInput("password_hash has t=0; at least 1 pass")
    if lanes < 1:
        raise InvalidInput("password_hash has p=0; at least 1 lane")
    if memory < MIN_MEMORY_PER_LANE_KIB * lanes:
        raise InvalidInput(
            f"password_hash has m={memory} with p={lanes}; at least "
            f"{MIN_MEMORY_PER_LANE_KIB} KiB per lane"
        )
    for name, text, least in (
        ("salt", found[5], MIN_SALT_BYTES),
        ("hash", found[6], MIN_TAG_BYTES),
    ):
        size = _unpadded_base64_size(text)
        if size is None:
            raise InvalidInput(f"password_hash: its {name} is not base64 without padding")
        if size < least:
            raise InvalidInput(f"password_hash: its {name} is {size} bytes; at least {least}")
    if memory > MAX_IMPORTED_MEMORY_KIB:
        raise InvalidInput(
            f"password_hash needs {memory} KiB to verify; at most {MAX_IMPORTED_MEMORY_KIB}"
        )
    if memory * passes > MAX_IMPORTED_WORK_KIB:
        raise InvalidInput(
            f"password_hash takes {passes} passes over {memory} KiB to verify; at most "
            f"{MAX_IMPORTED_WORK_KIB} KiB in all"
        )
    if lanes > MAX_IMPORTED_PARALLELISM:
        raise InvalidInput(
            f"password_hash has parallelism {lanes}; at most {MAX_IMPORTED_PARALLELISM}"
        )
    return value


def _unpadded_base64_size(text: str) -> int | None:
    """How many bytes ``text`` encodes, if it is canonical base64 without padding; else None."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    # Re-encoded, it must read the same: no padding, no stray bits in the last character.
    if base64.b64encode(data).decode("ascii").rstrip("=") != text:
        return None
    return len(data)
