"""A PSKC file's cryptography on its own: each value's MAC, decryption and key derivation."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from otpcore.pskc_crypto import (
    MAX_PBKDF2_ITERATIONS,
    DecryptionFailed,
    Decryptor,
    Derivation,
    DerivationFailed,
    Encrypted,
)

KEY = bytes(range(16))
MAC_KEY = bytes(range(100, 120))
SEED = b"12345678901234567890"
WRONG_KEY = "wrong pre-shared key or password"


def cbc(plain: bytes, key: bytes = KEY) -> bytes:
    """IV || AES-CBC ciphertext of ``plain`` with PKCS #7 padding, as a PSKC file holds it."""
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def value(plain: bytes, algorithm: str = "aes128-cbc") -> Encrypted:
    """An encrypted value with its ValueMAC under MAC_KEY."""
    cipher = cbc(plain)
    return Encrypted(algorithm, cipher, hmac.digest(MAC_KEY, cipher, "sha1"))


def decryptor(mac_algorithm: str = "hmac-sha1", default: str = "aes128-cbc") -> Decryptor:
    """A file's decryptor whose MACKey is MAC_KEY, encrypted under KEY."""
    return Decryptor(KEY, mac_algorithm, Encrypted("", cbc(MAC_KEY)), default)


def refusal(decrypting: Decryptor, encrypted: Encrypted) -> str:
    with pytest.raises(DecryptionFailed) as caught:
        decrypting.value(encrypted)
    return str(caught.value)


def test_a_value_is_checked_and_decrypted() -> None:
    assert decryptor().value(value(SEED)) == SEED
    # A value naming no method takes the file's; the MACKey above named none either.
    assert decryptor().value(value(SEED, algorithm="")) == SEED


def test_an_altered_value_or_a_wrong_mac_key_is_refused_before_decrypting() -> None:
    good = value(SEED)
    altered = Encrypted(good.algorithm, good.cipher[:-1] + bytes([good.cipher[-1] ^ 1]), good.mac)
    message = f"MAC check failed: {WRONG_KEY}, or the file was altered"
    assert refusal(decryptor(), altered) == message
    other_mac_key = Decryptor(KEY, "hmac-sha1", Encrypted("", cbc(bytes(20))), "aes128-cbc")
    assert refusal(other_mac_key, good) == message
    # Without a MACKey the key itself is the MAC key (one agreed beforehand).
    agreed = Encrypted("aes128-cbc", good.cipher, hmac.digest(KEY, good.cipher, "sha256"))
    assert Decryptor(KEY, "hmac-sha256", None, "").value(agreed) == SEED


@pytest.mark.parametrize(
    ("mac_algorithm", "named"),
    [("", "none (no MACMethod)"), ("hmac-md5", "'hmac-md5'")],
)
def test_a_mac_that_cannot_be_checked_is_refused(mac_algorithm: str, named: str) -> None:
    assert refusal(decryptor(mac_algorithm), value(SEED)) == (
        f"cannot check the ValueMAC: MAC algorithm {named} unsupported"
    )


@pytest.mark.parametrize(
    ("cipher", "algorithm", "default", "message"),
    [
        (bytes(16), "aes128-cbc", "", "cannot decrypt (invalid length): the value is damaged"),
        (bytes(33), "aes128-cbc", "", "cannot decrypt (invalid length): the value is damaged"),
        (bytes(32), "aes256-cbc", "", f"cannot decrypt (invalid key length): {WRONG_KEY}"),
        (bytes(24), "kw-aes256", "", f"cannot decrypt (invalid key length): {WRONG_KEY}"),
        (bytes(24), "kw-aes128", "", f"cannot decrypt (key unwrap failed): {WRONG_KEY}"),
        (bytes(32), "", "", "cannot decrypt: the value names no encryption method"),
        (bytes(32), "", "camellia128-cbc", "cannot decrypt: unsupported encryption method"
         " 'camellia128-cbc'"),
    ],
)  # fmt: skip
def test_a_value_that_cannot_be_decrypted_says_why(
    cipher: bytes, algorithm: str, default: str, message: str
) -> None:
    plain = Decryptor(KEY, "", None, default)  # no ValueMAC on these: nothing to check first
    assert refusal(plain, Encrypted(algorithm, cipher)) == message


def test_wrong_padding_is_a_wrong_key() -> None:
    cipher = cbc(SEED, key=bytes(16))
    assert refusal(Decryptor(KEY, "", None, ""), Encrypted("aes128-cbc", cipher)) == (
        f"cannot decrypt (invalid padding): {WRONG_KEY}"
    )


@pytest.mark.parametrize(
    ("plain", "number"),
    [(b"12345", 12345), (b"\x01\x00", 256), (b"\xff" * 8, 2**64 - 1)],
)
def test_an_encrypted_number_is_digits_or_big_endian_bytes(plain: bytes, number: int) -> None:
    assert decryptor().integer(value(plain)) == number


@pytest.mark.parametrize("plain", [b"", b"\x01" * 9])
def test_an_encrypted_number_of_no_or_too_many_bytes_is_refused(plain: bytes) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        decryptor().integer(value(plain))
    assert str(caught.value) == "an encrypted number has an impossible length"


def test_pbkdf2_derives_the_rfc_6070_key() -> None:
    derivation = Derivation("pbkdf2", b"salt", 4096, 20)
    assert derivation.derive("password").hex() == "4b007901b765489abead49d926f721d065a429c1"
    sha256 = Derivation("pbkdf2", b"salt", 1, 32, prf="hmac-sha256")
    assert sha256.derive("password") == hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 1)


@pytest.mark.parametrize(
    ("derivation", "message"),
    [
        (Derivation("scrypt", b"salt", 1, 16), "unsupported key derivation 'scrypt'"),
        (Derivation("pbkdf2", b"salt", 1, 16, prf="hmac-md5"),
         "unsupported PBKDF2 pseudorandom function 'hmac-md5'"),
        (Derivation("pbkdf2", None, 1, 16),
         "incomplete PBKDF2 parameters (salt, iterations, key length)"),
        (Derivation("pbkdf2", b"salt", -1, 16), "PBKDF2 parameters out of range"),
        (Derivation("pbkdf2", b"salt", 1, -16), "PBKDF2 parameters out of range"),
        # A hostile file must not keep the CLI busy for hours, nor ask for a huge key.
        (Derivation("pbkdf2", b"salt", MAX_PBKDF2_ITERATIONS + 1, 16),
         "PBKDF2 parameters out of range"),
        (Derivation("pbkdf2", b"salt", 1, 65), "PBKDF2 parameters out of range"),
    ],
)  # fmt: skip
def test_a_key_that_cannot_be_derived_says_why(derivation: Derivation, message: str) -> None:
    with pytest.raises(DerivationFailed) as caught:
        derivation.derive("qwerty")
    assert str(caught.value) == message
