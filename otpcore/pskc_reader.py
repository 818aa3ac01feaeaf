"""A PSKC file (RFC 6030) read into plain records: what it says, not yet what a bank accepts.

The document is parsed a child of its KeyContainer at a time, each child's tree walked once
as soon as it is complete and then dropped, so that the tree of the whole file is never held
(about nine times the file's size: 870 MB for 100,000 keys). Each element's children are
dispatched by local name: namespaces are not compared, so the RFC's
``urn:ietf:params:xml:ns:keyprov:pskc``, a vendor's own prefix or none at all read alike. The
draft format before RFC 6030 (``<SecretContainer>``, ``<Device>``) is refused. Values stay
encrypted (``Encrypted``) until the importer has the key. A value that cannot be read raises
``MalformedPskc`` naming its key package; messages quote element names and short literals,
never a secret.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import cast
from xml.etree.ElementTree import Element, XMLPullParser

from otpcore.pskc_crypto import Derivation, Encrypted, algorithm_name
from otpcore.token_csv import shown

_FEED_BYTES = 1 << 16  # of the document handed to the parser at a time
MAX_BINARY_BYTES = 1024  # a seed is at most 128 bytes; IV, padding and MAC keys add little
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_POLICY_CHILDREN = frozenset(
    {"StartDate", "ExpiryDate", "NumberOfTransactions", "KeyUsage", "PINPolicy"}
)
_PIN_ATTRIBUTES = frozenset(
    {"PINKeyId", "PINUsageMode", "MaxFailedAttempts", "MinLength", "MaxLength", "PINEncoding"}
)
_DATA_FIELDS = {
    "Secret": "secret",
    "Counter": "counter",
    "Time": "time",
    "TimeInterval": "interval",
    "TimeDrift": "drift",
}

Plain = bytes | int
Value = Plain | Encrypted


class MalformedPskc(Exception):
    """A file that is not the PSKC it claims to be; ``package`` is the key package's index."""

    def __init__(self, detail: str, package: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.package = package


@dataclass(frozen=True, slots=True)
class Policy:
    """A key's ``Policy``: the rules the importer must be able to honour."""

    expiry: datetime | None = None
    key_usage: tuple[str, ...] = ()
    number_of_transactions: int | None = None
    pin_key_id: str | None = None
    pin_usage: str | None = None
    unknown: bool = False  # an element or attribute this reader does not know


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One ``<Key>`` with its package's DeviceInfo; data values as found (plain or not)."""

    package: int
    id: str | None
    algorithm: str | None
    serial: str | None = None
    device_expiry: datetime | None = None
    suite: str | None = None
    response_length: int | None = None
    response_encoding: str | None = None
    response_check: bool | None = None
    secret: bytes | Encrypted | None = field(default=None, repr=False)
    counter: int | Encrypted | None = None
    time: int | Encrypted | None = None
    interval: int | Encrypted | None = None
    drift: int | Encrypted | None = None
    policy: Policy = Policy()

    @property
    def encrypted(self) -> list[Encrypted]:
        """The key's encrypted data values."""
        values = (self.secret, self.counter, self.time, self.interval, self.drift)
        return [value for value in values if isinstance(value, Encrypted)]


@dataclass(slots=True)
class Container:
    """The whole file: how its values are protected, and its keys in document order."""

    keys: list[KeyRecord] = field(default_factory=list)
    key_name: str | None = None
    derivation: Derivation | None = None
    mac_algorithm: str = ""
    mac_key: Encrypted | None = None
    default_algorithm: str = ""  # a value without an EncryptionMethod uses the first one's


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag[tag.rfind("}") + 1 :]


class _Names(dict[str, str]):
    """Local names by tag, each worked out once: a file has a few dozen tags, a million times."""

    def __missing__(self, tag: str) -> str:
        name = self[tag] = local(tag)
        return name


def read_document(data: bytes, package_done: Callable[[], None]) -> Container:
    """The records of a PSKC document; ``package_done`` is called after each package.

    Only for a document ``scan_pskc`` has passed, which refuses any DOCTYPE and so any entity
    to expand. Raises ``xml.etree.ElementTree.ParseError`` for a document that is not
    well-formed XML, and ``MalformedPskc`` for one that is not the PSKC it claims to be.
    """
    reader = _Reader()
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    root: Element | None = None
    depth = 0
    view = memoryview(data)
    pieces = (view[offset : offset + _FEED_BYTES] for offset in range(0, len(data), _FEED_BYTES))
    for piece in chain(pieces, [None]):
        if piece is None:
            parser.close()  # the end of the document: a ParseError if it came too soon
        else:
            parser.feed(piece)
        # Only start and end events were asked for: each carries its element.
        events = cast("Iterator[tuple[str, Element]]", parser.read_events())
        for event, element in events:
            if event == "start":
                if root is None:
                    root = element
                    reader.begin(root)
                depth += 1
                continue
            depth -= 1
            if depth == 1 and root is not None:
                reader.child(element, package_done)
                root.remove(element)  # read: the next children need not find it beside them
    return reader.result


class _Reader:
    """One file's walk: the container being filled and the package being read."""

    def __init__(self) -> None:
        self.result = Container()
        self.package: int | None = None
        self.dates: dict[str, datetime] = {}  # vendors repeat one expiry date for every key
        self.names = _Names()
        self.packages = 0  # key packages read so far
        self.seen: set[str] = set()  # the KeyContainer's children allowed once, as read

    def fail(self, detail: str) -> MalformedPskc:
        return MalformedPskc(detail, self.package)

    def once(self, seen: set[str], name: str, where: str) -> None:
        """Refuse a second element where one is allowed: which would count is a guess, and a
        second Secret or ValueMAC could be what was slipped in on the way."""
        if name in seen:
            raise self.fail(f"{where} has more than one <{name}>")
        seen.add(name)

    def begin(self, root: Element) -> None:
        """Check the document element, as soon as it starts."""
        if self.names[root.tag] != "KeyContainer":
            raise MalformedPskc(
                f"<{self.names[root.tag]}> is the draft format before RFC 6030, not supported"
            )
        version = root.get("Version") or root.get("version")
        if version and version not in ("1", "1.0"):
            raise MalformedPskc(f"Unsupported version {shown(version)} (RFC 6030 is 1.0)")

    def child(self, child: Element, package_done: Callable[[], None]) -> None:
        """Read one complete child of the KeyContainer, in document order."""
        name = self.names[child.tag]
        if name in ("EncryptionKey", "MACMethod"):
            self.once(self.seen, name, "the KeyContainer")
        if name == "KeyPackage":
            self.package = self.packages
            self.key_package(child)
            self.package = None
            self.packages += 1
            package_done()
        elif name == "EncryptionKey":
            self.encryption_key(child)
        elif name == "MACMethod":
            self.mac_method(child)
        elif name == "Device":
            self.package = self.packages
            raise self.fail("<Device> is the draft format before RFC 6030, not supported")

    # Container-level protection

    def encryption_key(self, element: Element) -> None:
        for child in element:
            name = self.names[child.tag]
            if name == "KeyName":
                self.result.key_name = self.result.key_name or _text(child)
            elif name == "DerivedKey":
                self.derived_key(child)

    def derived_key(self, element: Element) -> None:
        for child in element:
            name = self.names[child.tag]
            if name in ("MasterKeyName", "CarriedKeyName"):
                self.result.key_name = self.result.key_name or _text(child)
            elif name == "KeyDerivationMethod":
                self.result.derivation = self.derivation(child)

    def derivation(self, element: Element) -> Derivation:
        algorithm = algorithm_name(element.get("Algorithm")) or "(none)"
        salt = iterations = key_length = None
        prf = ""
        for params in element:
            if self.names[params.tag] != "PBKDF2-params":
                continue
            for child in params:
                name = self.names[child.tag]
                if name == "Salt":
                    specified = [s for s in child if self.names[s.tag] == "Specified"]
                    salt = self.binary(specified[0], "Salt") if specified else None
                elif name == "IterationCount":
                    iterations = self.integer(_text(child), "IterationCount")
                elif name == "KeyLength":
                    key_length = self.integer(_text(child), "KeyLength")
                elif name == "PRF":
                    prf = algorithm_name(child.get("Algorithm"))
        return Derivation(algorithm, salt, iterations, key_length, prf)

    def mac_method(self, element: Element) -> None:
        self.result.mac_algorithm = algorithm_name(element.get("Algorithm"))
        for child in element:
            if self.names[child.tag] == "MACKey":
                self.result.mac_key = self.encrypted(child, None, "MACKey")

    # Key packages

    def key_package(self, package: Element) -> None:
        serial: str | None = None
        expiry: datetime | None = None
        keys: list[Element] = []
        for child in package:
            name = self.names[child.tag]
            if name == "DeviceInfo":
                seen: set[str] = set()
                for info in child:
                    info_name = self.names[info.tag]
                    if info_name == "SerialNo":
                        self.once(seen, info_name, "the DeviceInfo")
                        serial = _text(info)
                    elif info_name == "ExpiryDate":
                        self.once(seen, info_name, "the DeviceInfo")
                        expiry = self.date(info)
            elif name == "Key":
                keys.append(child)
        for key in keys:
            self.result.keys.append(self.key(key, serial, expiry))

    def key(self, key: Element, serial: str | None, expiry: datetime | None) -> KeyRecord:
        values: dict[str, Value | None] = dict.fromkeys(_DATA_FIELDS.values())
        response = _Response()
        suite: str | None = None
        policy = Policy()
        seen: set[str] = set()
        for child in key:
            name = self.names[child.tag]
            if name == "AlgorithmParameters":
                for parameter in child:
                    parameter_name = self.names[parameter.tag]
                    if parameter_name == "Suite":
                        suite = _text(parameter) or None
                    elif parameter_name == "ResponseFormat":
                        response = self.response_format(parameter)
            elif name == "Data":
                for data in child:
                    data_name = self.names[data.tag]
                    attribute = _DATA_FIELDS.get(data_name)
                    if attribute is not None:
                        self.once(seen, data_name, "the key's Data")
                        values[attribute] = self.data(data, data_name)
            elif name == "Policy":
                policy = self.policy(child)
        secret = values["secret"]
        if isinstance(secret, int):  # data() reads a Secret as bytes: never so
            raise self.fail("the Secret is not binary")
        return KeyRecord(
            package=self.package if self.package is not None else -1,
            id=key.get("Id") or None,
            algorithm=key.get("Algorithm") or None,
            serial=serial,
            device_expiry=expiry,
            suite=suite,
            response_length=response.length,
            response_encoding=response.encoding,
            response_check=response.check,
            secret=secret,
            counter=_number(values["counter"]),
            time=_number(values["time"]),
            interval=_number(values["interval"]),
            drift=_number(values["drift"]),
            policy=policy,
        )

    def response_format(self, element: Element) -> _Response:
        length = element.get("Length")
        return _Response(
            self.integer(length, "ResponseFormat Length") if length else None,
            element.get("Encoding") or None,
            self.boolean(element.get("CheckDigits"), "CheckDigits"),
        )

    def data(self, element: Element, name: str) -> Value | None:
        """A Data child: a PlainValue, or an EncryptedValue with its ValueMAC."""
        plain: Element | None = None
        encrypted: Element | None = None
        mac: bytes | None = None
        seen: set[str] = set()
        for child in element:
            child_name = self.names[child.tag]
            self.once(seen, child_name, f"the {name}")
            if child_name == "PlainValue":
                plain = child
            elif child_name == "EncryptedValue":
                encrypted = child
            elif child_name == "ValueMAC":
                mac = self.binary(child, f"{name} ValueMAC") or None
        if plain is not None and encrypted is not None:
            raise self.fail(f"the {name} has both a PlainValue and an EncryptedValue")
        if encrypted is not None:
            return self.encrypted(encrypted, mac, name)
        if plain is None or not _text(plain):
            return None
        if name == "Secret":
            return self.binary(plain, "Secret PlainValue")
        return self.integer(_text(plain), name)

    def encrypted(self, element: Element, mac: bytes | None, name: str) -> Encrypted:
        algorithm = ""
        cipher: bytes | None = None
        for child in element:
            child_name = self.names[child.tag]
            if child_name == "EncryptionMethod":
                algorithm = algorithm_name(child.get("Algorithm"))
            elif child_name == "CipherData":
                for value in child:
                    if self.names[value.tag] == "CipherValue":
                        cipher = self.binary(value, f"{name} CipherValue")
        if not cipher:
            raise self.fail(f"the {name}'s EncryptedValue has no CipherValue")
        if name != "MACKey" and algorithm and not self.result.default_algorithm:
            self.result.default_algorithm = algorithm
        return Encrypted(algorithm, cipher, mac)

    def policy(self, element: Element) -> Policy:
        expiry: datetime | None = None
        usage: list[str] = []
        transactions: int | None = None
        pin_key_id = pin_usage = None
        unknown = False
        for child in element:
            name = self.names[child.tag]
            if name == "ExpiryDate":
                expiry = self.date(child)
            elif name == "KeyUsage":
                usage.append(_text(child))
            elif name == "NumberOfTransactions":
                transactions = self.integer(_text(child), "NumberOfTransactions")
            elif name == "PINPolicy":
                pin_key_id = child.get("PINKeyId")
                pin_usage = child.get("PINUsageMode")
                unknown = unknown or len(child) > 0 or not _PIN_ATTRIBUTES.issuperset(child.keys())
            unknown = unknown or name not in _POLICY_CHILDREN
        return Policy(expiry, tuple(usage), transactions, pin_key_id, pin_usage, unknown)

    # Literals

    def integer(self, text: str, what: str) -> int | None:
        text = text.strip()
        if not text:
            return None
        if not _INTEGER.fullmatch(text):
            raise self.fail(f"{what} {shown(text)} is not an integer")
        return int(text)

    def boolean(self, text: str | None, what: str) -> bool | None:
        value = (text or "").strip().lower()
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        if value:
            raise self.fail(f"{what} {shown(value)} is not true or false")
        return None

    def binary(self, element: Element, what: str) -> bytes:
        text = element.text or ""
        if len(text) > MAX_BINARY_BYTES * 2:
            raise self.fail(f"the {what} is longer than any PSKC value needs")
        try:
            return binascii.a2b_base64(text)
        except binascii.Error:
            # The text may be a secret: say what is wrong, not what it is.
            raise self.fail(f"the {what} is not valid base64") from None

    def date(self, element: Element) -> datetime | None:
        text = _text(element)
        if not text:
            return None
        cached = self.dates.get(text)
        if cached is not None:
            return cached
        try:
            # xs:dateTime; the 'Z' of UTC is read by fromisoformat from Python 3.11 on. A time
            # without a zone is UTC (RFC 6030 §4.3.3).
            value = datetime.fromisoformat(text)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            name = self.names[element.tag]
            raise self.fail(f"{name} {shown(text)} is not a date and time") from None
        self.dates[text] = value
        return value


@dataclass(frozen=True, slots=True)
class _Response:
    length: int | None = None
    encoding: str | None = None
    check: bool | None = None


def _number(value: Value | None) -> int | Encrypted | None:
    """A numeric Data value: data() reads only a Secret as bytes."""
    return None if isinstance(value, bytes) else value


def _text(element: Element) -> str:
    return (element.text or "").strip()
