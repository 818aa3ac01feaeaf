"""Checking a configuration file's values: errors that name the file and the key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from otpcore.errors import ConfigError

SecretReader = Callable[[Path], bytes]
"""Reads a ``secret_file``; the shells pass ``otpcore.crypto.read_secret_file``."""


class Checker:
    """Makes the errors of one configuration file, each naming the file and the key."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        """The error to raise for ``where`` (a table, a key)."""
        return ConfigError(f"{self.source}: {where}: {message}")

    def table(
        self, data: dict[str, Any], name: str, allowed: dict[str, type | tuple[type, ...]]
    ) -> dict[str, Any]:
        """The table ``[name]`` (empty when absent), its keys and their types checked."""
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"[{name}]", "expected a table")
        for key, item in value.items():
            if key not in allowed:
                raise self.fail(f"[{name}] {key}", "unknown key")
            self.typed(f"[{name}] {key}", item, allowed[key])
        return value

    def typed(self, where: str, item: object, expected: type | tuple[type, ...]) -> None:
        """Refuse a value not of the expected type (a TOML boolean is no number)."""
        types = expected if isinstance(expected, tuple) else (expected,)
        # bool is an int in Python; a TOML true must not pass for a number.
        if isinstance(item, bool) and bool not in types:
            raise self.fail(where, f"expected {_type_names(types)}, got a boolean")
        if not isinstance(item, types):
            got = _type_names((type(item),))
            raise self.fail(where, f"expected {_type_names(types)}, got {got}")

    def path(self, where: str, base: Path, value: str) -> Path:
        """The path ``value`` names (relative ones from ``base``), refused if it holds a NUL."""
        # No file has such a name, and Python raises ValueError, not OSError, for one: the
        # daemon ended on a SIGHUP instead of keeping its running clients.
        if "\x00" in value:
            raise self.fail(where, "contains a NUL character")
        return resolve(base, value)

    def between(self, where: str, value: int, minimum: int, maximum: int) -> int:
        """The value, refused unless within ``minimum`` and ``maximum``."""
        # No key is open-ended: TOML integers reach Python unbounded, SQLite binds 64 bits.
        if not minimum <= value <= maximum:
            raise self.fail(where, f"must be from {minimum} to {maximum}")
        return value


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
    names |= {list: "a list", dict: "a table"}
    # TOML's dates and times, as a value written unquoted (start = 2026-12-01) reads.
    names |= {datetime: "a date and time", date: "a date", time: "a time"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def resolve(base: Path, value: str) -> Path:
    """A path of the file, relative ones taken from the file's folder."""
    path = Path(value)
    return path if path.is_absolute() else base / path
