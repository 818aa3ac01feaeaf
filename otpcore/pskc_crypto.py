"""The cryptography of a PSKC file (RFC 6030 §6): key derivation, MAC checks, decryption.

Encryption methods are those of XML Encryption that RFC 6030 §6.1 names and vendors use:
AES-128/192/256-CBC and Triple-DES-CBC (the IV before the ciphertext, PKCS #7 padding) and
AES key wrap (RFC 3394, or RFC 5649 when the value was padded). MACs are HMAC-SHA1 to
HMAC-SHA512 over IV || ciphertext (§6.1.1), compared in constant time, and always checked
before the value is decrypted. Failures are ``DecryptionFailed`` with a message that names
no secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import (
    BlockCipherAlgorithm,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
)

from otpcore.token_csv import shown

MAX_PBKDF2_ITERATIONS = 10_000_000  # a hostile file must not keep the CLI busy for hours
MAX_PBKDF2_KEY_LENGTH = 64
MAX_INTEGER_BYTES = 8  # an encrypted counter or interval: a 64-bit number at most

# Algorithm URIs are compared by their fragment ('…/xmlenc#aes128-cbc' -> 'aes128-cbc').
CBC_KEY_LENGTHS = {
    "aes128-cbc": (16,),
    "aes192-cbc": (24,),
    "aes256-cbc": (32,),
    "tripledes-cbc": (16, 24),
}
KEY_WRAP_LENGTHS = {"kw-aes128": 16, "kw-aes192": 24, "kw-aes256": 32}
MAC_HASHES = {
    "hmac-sha1": "sha1",
    "hmac-sha224": "sha224",
    "hmac-sha256": "sha256",
    "hmac-sha384": "sha384",
    "hmac-sha512": "sha512",
}
PBKDF2 = "pbkdf2"
WRONG_KEY = "wrong pre-shared key or password"


class DecryptionFailed(Exception):
    """A value that cannot be decrypted or whose MAC does not match; the message is final."""


class DerivationFailed(Exception):
    """A password-derived key that cannot be computed from the file's parameters."""


def algorithm_name(uri: str | None) -> str:
    """The lower-case fragment of an algorithm URI ('' when there is none)."""
    if not uri:
        return ""
    return uri.strip().rsplit("#", 1)[-1].lower()


@dataclass(frozen=True, slots=True)
class Encrypted:
    """An ``EncryptedValue``: the algorithm's name, IV || ciphertext, and its ValueMAC."""

    algorithm: str
    cipher: bytes = field(repr=False)
    mac: bytes | None = field(default=None, repr=False)  # None when absent or empty


@dataclass(frozen=True, slots=True)
class Derivation:
    """``DerivedKey``'s PBKDF2 parameters (RFC 6030 §6.2, PKCS #5 v2.0)."""

    algorithm: str
    salt: bytes | None = field(default=None, repr=False)
    iterations: int | None = None
    key_length: int | None = None
    prf: str = ""  # the PRF's algorithm name; HMAC-SHA1 when empty

    @property
    def in_range(self) -> bool:
        """Whether the cost a hostile file could ask for is within the bounds."""
        return (self.iterations or 0) <= MAX_PBKDF2_ITERATIONS and (
            self.key_length or 0
        ) <= MAX_PBKDF2_KEY_LENGTH

    def derive(self, password: str) -> bytes:
        """The key PBKDF2 derives from ``password``; DerivationFailed if it cannot."""
        if self.algorithm != PBKDF2:
            raise DerivationFailed(f"unsupported key derivation {shown(self.algorithm)}")
        prf = self.prf or "hmac-sha1"
        digest = MAC_HASHES.get(prf)
        if digest is None:
            raise DerivationFailed(f"unsupported PBKDF2 pseudorandom function {shown(prf)}")
        if not (self.salt and self.iterations and self.key_length and password):
            raise DerivationFailed("incomplete PBKDF2 parameters (salt, iterations, key length)")
        if not self.in_range or self.iterations < 0 or self.key_length < 0:
            raise DerivationFailed("PBKDF2 parameters out of range")
        return hashlib.pbkdf2_hmac(
            digest, password.encode(), self.salt, self.iterations, self.key_length
        )


class Decryptor:
    """Checks the MAC of and decrypts a file's values under one key (pre-shared or derived).

    The MAC key is the file's ``MACKey`` decrypted with the same key, or that key itself when
    the file carries none (a MAC key agreed beforehand, RFC 6030 §6.1.1); it is decrypted on
    first use, so that a wrong key is reported at the first key that needs it.
    """

    def __init__(
        self, key: bytes, mac_algorithm: str, mac_key: Encrypted | None, default_algorithm: str
    ) -> None:
        self._key = key
        self._mac_algorithm = mac_algorithm
        self._mac_key_value = mac_key
        self._mac_key: bytes | None = None
        self._default = default_algorithm
        self._blocks: dict[str, CipherContext] = {}  # one ECB context per CBC algorithm

    def value(self, value: Encrypted) -> bytes:
        """The plaintext of ``value``, after its ValueMAC (if any) is checked."""
        if value.mac is not None:
            self._check_mac(value)
        return self._decrypt(value.algorithm or self._default, value.cipher)

    def integer(self, value: Encrypted) -> int:
        """An encrypted integer: its decimal digits, or else its bytes big-endian."""
        plain = self.value(value)
        if not plain or len(plain) > MAX_INTEGER_BYTES:
            raise DecryptionFailed("an encrypted number has an impossible length")
        if plain.isdigit():
            return int(plain)
        return int.from_bytes(plain, "big")

    def _check_mac(self, value: Encrypted) -> None:
        digest = MAC_HASHES.get(self._mac_algorithm)
        if digest is None:
            what = shown(self._mac_algorithm) if self._mac_algorithm else "none (no MACMethod)"
            raise DecryptionFailed(f"cannot check the ValueMAC: MAC algorithm {what} unsupported")
        if self._mac_key is None:
            if self._mac_key_value is None:
                self._mac_key = self._key
            else:
                algorithm = self._mac_key_value.algorithm or self._default
                self._mac_key = self._decrypt(algorithm, self._mac_key_value.cipher)
        expected = hmac.digest(self._mac_key, value.cipher, digest)
        if not hmac.compare_digest(expected, value.mac or b""):
            raise DecryptionFailed(f"MAC check failed: {WRONG_KEY}, or the file was altered")

    def _decrypt(self, algorithm: str, cipher: bytes) -> bytes:
        key = self._key
        if algorithm in CBC_KEY_LENGTHS:
            if len(key) not in CBC_KEY_LENGTHS[algorithm]:
                raise DecryptionFailed(f"cannot decrypt (invalid key length): {WRONG_KEY}")
            return self._cbc(algorithm, cipher)
        if algorithm in KEY_WRAP_LENGTHS:
            if len(key) != KEY_WRAP_LENGTHS[algorithm]:
                raise DecryptionFailed(f"cannot decrypt (invalid key length): {WRONG_KEY}")
            return _unwrap(key, cipher)
        if not algorithm:
            raise DecryptionFailed("cannot decrypt: the value names no encryption method")
        raise DecryptionFailed(f"cannot decrypt: unsupported encryption method {shown(algorithm)}")

    def _cbc(self, algorithm: str, cipher: bytes) -> bytes:
        """CBC with the IV as the first block, then PKCS #7 padding removed.

        The blocks go through one ECB context kept for the whole file and the chaining is
        XORed here: a cipher context per value cost ten times the decryption itself. A value
        is whole blocks, so the context never holds a partial one between values.
        """
        size = 8 if algorithm == "tripledes-cbc" else 16
        if len(cipher) < 2 * size or len(cipher) % size:
            raise DecryptionFailed("cannot decrypt (invalid length): the value is damaged")
        blocks = self._blocks.get(algorithm)
        if blocks is None:
            block: BlockCipherAlgorithm = (
                TripleDES(self._key) if size == 8 else algorithms.AES(self._key)
            )
            blocks = self._blocks[algorithm] = Cipher(block, modes.ECB()).decryptor()  # noqa: S305
        decrypted = blocks.update(cipher[size:])
        length = len(decrypted)
        chained = int.from_bytes(decrypted, "big") ^ int.from_bytes(cipher[:length], "big")
        padded = chained.to_bytes(length, "big")
        pad = padded[-1]
        # The MAC, checked first, already vouches for the bytes: no padding oracle to avoid.
        if not 1 <= pad <= size or padded[-pad:] != bytes([pad]) * pad:
            raise DecryptionFailed(f"cannot decrypt (invalid padding): {WRONG_KEY}")
        return padded[:-pad]


def _unwrap(key: bytes, wrapped: bytes) -> bytes:
    """AES key unwrap: RFC 3394, or RFC 5649 for a value that was not a multiple of 8 bytes."""
    try:
        return aes_key_unwrap(key, wrapped)
    except (InvalidUnwrap, ValueError):
        pass
    try:
        return aes_key_unwrap_with_padding(key, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptionFailed(f"cannot decrypt (key unwrap failed): {WRONG_KEY}") from None
