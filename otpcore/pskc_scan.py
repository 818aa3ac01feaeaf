"""The pre-check of a PSKC file, before the tree is built: well-formed XML, no DOCTYPE (so no
entity can expand), a PSKC root, and the line where each key starts, so that a refusal names
its line as a CSV refusal does.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field

from otpcore.errors import ImportRefused

# The elements that hold keys: RFC 6030's KeyPackage, and the draft format's Device (which
# the reader refuses, at its line).
PACKAGES = ("KeyPackage", "Device")


@dataclass(slots=True)
class Package:
    """A KeyPackage (or a Device of the draft format) and the lines of its keys."""

    kind: str
    line: int
    keys: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Scan:
    """What the pre-check found: the root element and each key package, in document order."""

    root: str = ""
    packages: list[Package] = field(default_factory=list)

    @property
    def key_lines(self) -> list[int | None]:
        """Lines of the ``<Key>`` elements, in the order the reader lists its keys."""
        return [line for p in self.packages for line in p.keys]

    def package_line(self, index: int) -> int | None:
        """Where the ``index``-th key package starts: its first key, or itself."""
        if not 0 <= index < len(self.packages):
            return None
        package = self.packages[index]
        return next(iter(package.keys), package.line)


class _DoctypeRefused(Exception):
    pass


def scan_pskc(data: bytes, source: str) -> Scan:
    """Check well-formedness with expat, refuse a DOCTYPE, note where each key starts."""
    scan = Scan()
    # Only the first three levels matter: the depth is counted, names kept for those only
    # (a million elements pass through these two handlers, so they do as little as they can).
    depth = 0
    parents: list[str] = []
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def start(name: str, _attributes: object) -> None:
        nonlocal depth
        depth += 1
        if depth > 3:
            return
        local = name.rsplit(" ", 1)[-1]
        if depth == 1:
            scan.root = local
        elif depth == 2 and local in PACKAGES:
            scan.packages.append(Package(local, parser.CurrentLineNumber))
        elif depth == 3 and local == "Key" and parents[1] in PACKAGES and scan.packages:
            scan.packages[-1].keys.append(parser.CurrentLineNumber)
        del parents[depth - 1 :]
        parents.append(local)

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    def doctype(*_args: object) -> None:
        raise _DoctypeRefused

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except _DoctypeRefused:
        line = parser.CurrentLineNumber
        raise ImportRefused(source, line, "a DOCTYPE is not allowed in a PSKC file") from None
    except xml.parsers.expat.ExpatError as exc:
        message = xml.parsers.expat.errors.messages.get(exc.code, "XML error")
        raise ImportRefused(
            source, exc.lineno, f"not a PSKC file: not well-formed XML ({message})"
        ) from None
    if scan.root not in ("KeyContainer", "SecretContainer"):
        raise ImportRefused(
            source, 1, f"not a PSKC file: the root element is <{scan.root}>, not <KeyContainer>"
        )
    return scan
