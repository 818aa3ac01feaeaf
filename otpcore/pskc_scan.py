"""The pre-check of a PSKC file, before python-pskc sees it: well-formed XML, no DOCTYPE
(so no entity can expand), a PSKC root, and the line where each key starts, so that a
refusal names its line as a CSV refusal does.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field

from otpcore.errors import ImportRefused

# The elements that hold keys, in the order python-pskc parses them (see Scan.ordered).
PACKAGES = ("KeyPackage", "Device")
KEY_ELEMENTS = ("Key", "Secret")


@dataclass(slots=True)
class Package:
    """A KeyPackage (or a Device of the draft format) and the lines of its keys."""

    kind: str
    line: int
    keys: list[int] = field(default_factory=list)
    secrets: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Scan:
    """What the pre-check found: the root element and each key package."""

    root: str = ""
    packages: list[Package] = field(default_factory=list)

    @property
    def ordered(self) -> list[Package]:
        """The key packages in the order python-pskc parses them."""
        return [p for kind in PACKAGES for p in self.packages if p.kind == kind]

    @property
    def key_lines(self) -> list[int | None]:
        """Lines of the key elements, in the order python-pskc lists its keys."""
        return [line for p in self.ordered for line in (*p.keys, *p.secrets)]

    def package_line(self, index: int) -> int | None:
        """Where the ``index``-th package python-pskc parses starts: its key, or itself."""
        ordered = self.ordered
        if not 0 <= index < len(ordered):
            return None
        package = ordered[index]
        return next(iter((*package.keys, *package.secrets)), package.line)


class _DoctypeRefused(Exception):
    pass


def scan_pskc(data: bytes, source: str) -> Scan:
    """Check well-formedness with expat, refuse a DOCTYPE, note where each key starts."""
    scan = Scan()
    stack: list[str] = []
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def start(name: str, _attributes: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        depth = len(stack)
        if depth == 0:
            scan.root = local
        elif depth == 1 and local in PACKAGES:
            scan.packages.append(Package(local, parser.CurrentLineNumber))
        elif depth == 2 and stack[1] in PACKAGES and local in KEY_ELEMENTS and scan.packages:
            target = scan.packages[-1].keys if local == "Key" else scan.packages[-1].secrets
            target.append(parser.CurrentLineNumber)
        stack.append(local)

    def end(_name: str) -> None:
        stack.pop()

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
