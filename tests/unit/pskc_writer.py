"""PSKC files written by hand for the reader's tests, as RFC 6030 lays them out: every optional
element on or off, each protection, cipher and MAC, a namespace prefix or a default one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
PKCS5 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
MAC_URIS = {
    "hmac-sha1": "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    "hmac-sha224": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha224",
    "hmac-sha256": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    "hmac-sha384": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384",
    "hmac-sha512": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
}
KEY_LENGTHS = {
    "aes128-cbc": 16,
    "aes192-cbc": 24,
    "aes256-cbc": 32,
    "tripledes-cbc": 24,
    "kw-aes128": 16,
    "kw-aes256": 32,
}
TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"


@dataclass
class KeySpec:
    """One key package; None leaves the element out."""

    secret: bytes
    id: str | None = "k1"
    serial: str | None = None
    manufacturer: bool = False
    suite: str | None = None
    length: int | None = None
    encoding: bool = False  # Encoding="DECIMAL" and CheckDigits="false"
    interval: int | None = None
    time: int | None = None
    drift: int | None = None
    counter: int | None = None
    device_expiry: str | None = None
    policy_expiry: str | None = None
    key_usage: bool = False
    encrypt_numbers: bool = False  # TimeInterval, TimeDrift, Counter encrypted too
    numbers_as_text: bool = False  # an encrypted number as decimal digits, else 8 bytes


@dataclass
class FileSpec:
    """A file: its keys and how they are protected."""

    keys: list[KeySpec]
    protection: str = "plain"  # plain, psk, pbkdf2
    cipher: str = "aes128-cbc"
    mac: str | None = "hmac-sha1"
    mac_key_element: bool = True  # else the MAC key is the encryption key
    prefixed: bool = True  # pskc: prefixes, else a default namespace
    key_name: bool = False
    wrap_base64: bool = False  # CipherValue split over lines, as the RFC's figures are
    psk: bytes = field(default=b"", repr=False)
    password: str = "pw"
    salt: bytes = b"saltsalt"
    iterations: int = 10
    prf: str | None = None  # None: no PRF element (HMAC-SHA1)


class _Writer:
    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.p = "pskc:" if spec.prefixed else ""
        self.mac_key = os.urandom(20)
        self.key = spec.psk
        if spec.protection == "pbkdf2":
            digest = (spec.prf or "hmac-sha1").removeprefix("hmac-")
            length = KEY_LENGTHS[spec.cipher]
            password = spec.password.encode()
            self.key = hashlib.pbkdf2_hmac(digest, password, spec.salt, spec.iterations, length)

    def b64(self, data: bytes) -> str:
        text = base64.b64encode(data).decode()
        if self.spec.wrap_base64:
            return "\n" + "\n".join(text[i : i + 16] for i in range(0, len(text), 16)) + "\n"
        return text

    def encrypt(self, plaintext: bytes) -> bytes:
        cipher = self.spec.cipher
        if cipher.startswith("kw-"):
            if len(plaintext) % 8 or len(plaintext) < 16:
                return aes_key_wrap_with_padding(self.key, plaintext)
            return aes_key_wrap(self.key, plaintext)
        block = TripleDES(self.key) if cipher == "tripledes-cbc" else algorithms.AES(self.key)
        size = block.block_size
        iv = os.urandom(size // 8)
        padder = padding.PKCS7(size).padder()
        data = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(block, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(data) + encryptor.finalize()

    def method(self) -> str:
        return f'<xenc:EncryptionMethod Algorithm="{XENC}{self.spec.cipher}"/>'

    def value(
        self, name: str, plain: bytes | None, number: int | None, encrypt: bool, text: bool = False
    ) -> str:
        p = self.p
        if not encrypt:
            text = base64.b64encode(plain).decode() if plain is not None else str(number)
            return f"<{p}{name}><{p}PlainValue>{text}</{p}PlainValue></{p}{name}>"
        if plain is None:
            assert number is not None
            plain = str(number).encode() if text else number.to_bytes(8, "big")
        cipher = self.encrypt(plain)
        mac = ""
        if self.spec.mac:
            digest = self.spec.mac.removeprefix("hmac-")
            mac_key = self.mac_key if self.spec.mac_key_element else self.key
            mac = f"<{p}ValueMAC>{self.b64(hmac.digest(mac_key, cipher, digest))}</{p}ValueMAC>"
        return (
            f"<{p}{name}><{p}EncryptedValue>{self.method()}<xenc:CipherData>"
            f"<xenc:CipherValue>{self.b64(cipher)}</xenc:CipherValue></xenc:CipherData>"
            f"</{p}EncryptedValue>{mac}</{p}{name}>"
        )

    def package(self, key: KeySpec) -> str:
        p = self.p
        encrypted = self.spec.protection != "plain"
        info = ""
        if key.manufacturer:
            info += f"<{p}Manufacturer>Acme</{p}Manufacturer>"
        if key.serial is not None:
            info += f"<{p}SerialNo>{escape(key.serial)}</{p}SerialNo>"
        if key.device_expiry:
            info += f"<{p}ExpiryDate>{key.device_expiry}</{p}ExpiryDate>"
        parameters = ""
        if key.suite:
            parameters += f"<{p}Suite>{key.suite}</{p}Suite>"
        if key.length is not None:
            extra = ' Encoding="DECIMAL" CheckDigits="false"' if key.encoding else ""
            parameters += f'<{p}ResponseFormat Length="{key.length}"{extra}/>'
        numbers = encrypted and key.encrypt_numbers
        text = key.numbers_as_text
        data = self.value("Secret", key.secret, None, encrypted)
        for name, number in (("Counter", key.counter), ("Time", key.time)):
            if number is not None:
                data += self.value(name, None, number, numbers, text)
        if key.interval is not None:
            data += self.value("TimeInterval", None, key.interval, numbers, text)
        if key.drift is not None:  # an encrypted number is unsigned
            data += self.value("TimeDrift", None, key.drift, numbers and key.drift >= 0, text)
        policy = ""
        if key.policy_expiry:
            policy += f"<{p}ExpiryDate>{key.policy_expiry}</{p}ExpiryDate>"
        if key.key_usage:
            policy += f"<{p}KeyUsage>OTP</{p}KeyUsage>"
        key_id = f" Id={quoteattr(key.id)}" if key.id is not None else ""
        return (
            f"<{p}KeyPackage>"
            + _element(f"{p}DeviceInfo", info)
            + f'\n<{p}Key{key_id} Algorithm="{TOTP}">'
            + (f"<{p}Issuer>Bank</{p}Issuer>" if key.manufacturer else "")
            + (
                f"<{p}AlgorithmParameters>{parameters}</{p}AlgorithmParameters>"
                if parameters
                else ""
            )
            + f"<{p}Data>{data}</{p}Data>"
            + _element(f"{p}Policy", policy)
            + f"</{p}Key></{p}KeyPackage>\n"
        )

    def protection(self) -> str:
        p, spec = self.p, self.spec
        if spec.protection == "plain":
            return ""
        if spec.protection == "psk":
            name = "<ds:KeyName>Bank transport key</ds:KeyName>" if spec.key_name else ""
            head = f"<{p}EncryptionKey>{name}</{p}EncryptionKey>"
        else:
            prf = f'<PRF Algorithm="{MAC_URIS[spec.prf]}"/>' if spec.prf else ""
            length = KEY_LENGTHS[spec.cipher]
            head = (
                f"<{p}EncryptionKey><xenc11:DerivedKey>"
                f'<xenc11:KeyDerivationMethod Algorithm="{PKCS5}pbkdf2"><pkcs5:PBKDF2-params>'
                f"<Salt><Specified>{base64.b64encode(spec.salt).decode()}</Specified></Salt>"
                f"<IterationCount>{spec.iterations}</IterationCount>"
                f"<KeyLength>{length}</KeyLength>{prf}</pkcs5:PBKDF2-params>"
                "</xenc11:KeyDerivationMethod>"
                + (
                    "<xenc11:MasterKeyName>My Password</xenc11:MasterKeyName>"
                    if spec.key_name
                    else ""
                )
                + f"</xenc11:DerivedKey></{p}EncryptionKey>"
            )
        if spec.mac:
            mac_key = ""
            if spec.mac_key_element:
                mac_key = (
                    f"<{p}MACKey>{self.method()}<xenc:CipherData><xenc:CipherValue>"
                    f"{self.b64(self.encrypt(self.mac_key))}</xenc:CipherValue>"
                    f"</xenc:CipherData></{p}MACKey>"
                )
            head += f'<{p}MACMethod Algorithm="{MAC_URIS[spec.mac]}">{mac_key}</{p}MACMethod>'
        return head + "\n"

    def document(self) -> bytes:
        p = self.p
        declaration = 'xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"'
        if not self.spec.prefixed:
            declaration = 'xmlns="urn:ietf:params:xml:ns:keyprov:pskc"'
        head = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<{p}KeyContainer Version="1.0" '
            f'{declaration} xmlns:xenc="{XENC}" xmlns:xenc11="{XENC11}" '
            f'xmlns:pkcs5="{PKCS5}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">\n'
        )
        body = "".join(self.package(key) for key in self.spec.keys)
        return (head + self.protection() + body + f"</{p}KeyContainer>\n").encode()


def _element(tag: str, content: str) -> str:
    """``<tag>content</tag>``, or nothing for no content."""
    return f"<{tag}>{content}</{tag}>" if content else ""


def write_pskc(spec: FileSpec) -> bytes:
    """The PSKC document ``spec`` describes, encrypted under fresh IVs and MAC key."""
    return _Writer(spec).document()
