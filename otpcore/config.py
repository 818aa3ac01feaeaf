"""Configuration (SPEC §6): validation of the parsed TOML into frozen settings.

The shells read the file and say who may change it (``ConfigFile``); this module checks that
and what it holds, so that every error names the file and the key (``config.toml: [policy]
otp_window: expected an integer``). It opens no file itself but the secret files clients
name, through the reader the shell passes in.
"""

from __future__ import annotations

import ipaddress
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from otpcore.client_config import ClientConfig, parse_clients
from otpcore.config_checks import Checker, SecretReader
from otpcore.errors import ConfigError
from otpcore.passwords import HashingParams
from otpcore.policy import Policy, UnregisteredPolicy
from otpcore.zones import zone_problem


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: where to listen and how many worker processes."""

    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 1812), ("::1", 1812))
    workers: int = 2


@dataclass(frozen=True, slots=True)
class TokensConfig:
    """``[tokens]``: issuer shown by authenticator apps and the expiry warning horizon."""

    issuer: str = "otpradius"
    warn_days: int = 30


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``: syslog or stderr, facility and level."""

    syslog: bool = True
    facility: str = "authpriv"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole validated configuration."""

    source: Path
    server: ServerConfig
    database_url: str = field(repr=False)  # may carry the database password
    key_file: Path
    policy: Policy
    hashing: HashingParams
    tokens: TokensConfig
    logging: LoggingConfig
    clients: tuple[ClientConfig, ...]


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "server": {"listen": list, "workers": int},
    "database": {"url": str},
    "secrets": {"key_file": str},
    "policy": {
        "otp_window": int,
        "lockout_threshold": int,
        "password_lockout_threshold": int,
        "unregistered": str,
        "challenge_timeout": int,
        "reject_delay": (int, float),
        "reply_language": str,
    },
    "hashing": {"time_cost": int, "memory_kib": int, "parallelism": int},
    "tokens": {"issuer": str, "warn_days": int},
    "logging": {"syslog": bool, "facility": str, "level": str},
}
_FACILITIES = {
    "auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7",
}  # fmt: skip
_LEVELS = {"debug", "info", "warning", "error"}


# Write access of group or others. Reading is another matter (root:otpradius 0640 is how the
# service gets its secrets), but nobody besides the owner needs to write: the service only reads.
_CHANGED_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A configuration file as a shell read it: its bytes, and who may change it."""

    path: Path
    raw: bytes = field(repr=False)  # may hold a client's secret or a database password
    mode: int  # st_mode of the file that was read
    folder: Path  # the folder it really lies in, symlinks resolved
    folder_mode: int


def load_settings(file: ConfigFile, read_secret: SecretReader) -> Settings:
    """Validate a configuration file and who may change it; every problem is a ConfigError
    naming the file."""
    check_access(file)
    return settings_from_bytes(file.raw, file.path, read_secret)


def check_access(file: ConfigFile) -> None:
    """ConfigError unless only the file's owner may change it, or replace it."""
    # Whoever may write it decides which NAS are trusted (a client in mode ``otp`` skips the
    # password) and which database and key file are used.
    if file.mode & _CHANGED_BY_OTHERS:
        raise ConfigError(
            f"{file.path}: writable by group or others (mode {stat.S_IMODE(file.mode):04o}), "
            "who could add a client or swap the database; chmod 640 it"
        )
    # Whoever may write in its folder may replace the file with one of their own, unless the
    # sticky bit keeps them from touching files that are not theirs (as in /tmp).
    if file.folder_mode & _CHANGED_BY_OTHERS and not file.folder_mode & stat.S_ISVTX:
        raise ConfigError(
            f"{file.folder}: group or others may write in this folder and replace "
            f"{file.path.name}; chmod go-w it"
        )


def unreadable(path: Path, exc: OSError) -> ConfigError:
    """The error for a configuration file the shell could not read."""
    if isinstance(exc, FileNotFoundError):
        return ConfigError(
            f"{path}: configuration file not found (give --config PATH or set OTPRADIUS_CONFIG)"
        )
    return ConfigError(f"{path}: cannot read the configuration: {exc.strerror}")


def settings_from_bytes(raw: bytes, source: Path, read_secret: SecretReader) -> Settings:
    """Decode, parse and validate a configuration file's content (the shells read the file)."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": the file and line together.
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except ValueError:
        # Python's own limit on the digits of an integer it converts, which tomllib lets out.
        raise ConfigError(f"{source}: invalid TOML: an integer of over 4300 digits") from None
    except RecursionError:
        # tomllib reads nested arrays and inline tables by recursion.
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    return parse_settings(data, source, read_secret)


def _table(check: Checker, data: dict[str, Any], name: str) -> dict[str, Any]:
    return check.table(data, name, _SCHEMA[name])


def parse_settings(data: dict[str, Any], source: Path, read_secret: SecretReader) -> Settings:
    """Validate a parsed configuration; relative paths resolve against the file's folder."""
    check = Checker(source)
    for name in data:
        if name not in _SCHEMA and name != "clients":
            raise check.fail(f"[{name}]", "unknown table")
    base = source.parent
    server = _server(check, _table(check, data, "server"))
    database = _table(check, data, "database")
    secrets_table = _table(check, data, "secrets")
    key_file = check.path(
        "[secrets] key_file", base, secrets_table.get("key_file", "otpradius.key")
    )
    return Settings(
        source=source,
        server=server,
        database_url=_database_url(check, base, database.get("url", "sqlite:///otpradius.db")),
        key_file=key_file,
        policy=_policy(check, _table(check, data, "policy")),
        hashing=_hashing(check, _table(check, data, "hashing")),
        tokens=_tokens(check, _table(check, data, "tokens")),
        logging=_logging(check, _table(check, data, "logging")),
        clients=parse_clients(data.get("clients", []), source, read_secret),
    )


# The drivers otpradius is built and tested with; any other would fail at the first query.
_DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def _database_url(check: Checker, base: Path, url: Any) -> str:
    # Errors never quote the URL: it may carry the database password.
    if not isinstance(url, str):
        raise check.fail("[database] url", "expected a string")
    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise check.fail("[database] url", "not a database URL") from None
    if driver not in _DATABASE_DRIVERS:
        raise check.fail(
            "[database] url",
            f"unsupported driver {driver!r}: use sqlite:///PATH or postgresql+psycopg://…",
        )
    parsed = make_url(url)
    database = parsed.database
    if "\x00" in url:
        # No file has such a name; Python raises ValueError, not OSError, for one.
        raise check.fail("[database] url", "contains a NUL character")
    if parsed.get_backend_name() == "sqlite" and database in (None, "", ":memory:"):
        # Each connection would get an empty database of its own: init would create a schema
        # that is gone when it exits, and the server would know no user.
        raise check.fail("[database] url", "an in-memory SQLite database keeps nothing")
    relative = not Path(str(database)).is_absolute()
    if parsed.get_backend_name() == "sqlite" and relative:
        # Whatever the driver is spelt as: against the working directory, which under
        # systemd is /, the server would open (and create) another database.
        path = str((base / str(database)).resolve())
        if not _is_text(path):
            # A folder named in another encoding: a URL is text and cannot carry its bytes.
            raise check.fail(
                "[database] url",
                "the database path, relative to this file's folder, is not UTF-8 text: "
                "give an absolute sqlite:/// path, or move the configuration",
            )
        return parsed.set(database=path).render_as_string(hide_password=False)
    return url


def _is_text(value: str) -> bool:
    """False for a path that holds bytes that are not UTF-8 (kept by Python as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _server(check: Checker, table: dict[str, Any]) -> ServerConfig:
    listen: list[tuple[str, int]] = []
    for item in table.get("listen", ["127.0.0.1:1812", "[::1]:1812"]):
        if not isinstance(item, str):
            raise check.fail("[server] listen", "expected a list of 'host:port' strings")
        listen.append(parse_endpoint(item, check))
    if not listen:  # the server would report itself ready, and serve nothing
        raise check.fail("[server] listen", "no address given")
    # 0 is one per core; more than a host has cores only take turns on them.
    workers = check.between("[server] workers", table.get("workers", 2), 0, 256)
    return ServerConfig(tuple(listen), workers)


def parse_endpoint(item: str, check: Checker) -> tuple[str, int]:
    """'127.0.0.1:1812' or '[::1]:1812' to (host, port)."""
    host, sep, port_text = item.rpartition(":")
    # ASCII digits only, and few: int() refuses some that isdigit() takes ("²"), and more
    # than 4300 of them.
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not sep or not digits or not 0 < int(port_text) < 65536:
        raise check.fail("[server] listen", f"{item!r} is not 'host:port'")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise check.fail("[server] listen", f"{host!r} is not an IP address") from None
    if problem := zone_problem(host):
        raise check.fail("[server] listen", f"{item!r}: {problem}")
    return host, int(port_text)


def _policy(check: Checker, table: dict[str, Any]) -> Policy:
    default = Policy()
    unregistered = table.get("unregistered", default.unregistered.value)
    if unregistered not in {p.value for p in UnregisteredPolicy}:
        raise check.fail("[policy] unregistered", "must be 'password' or 'reject'")
    language = table.get("reply_language", default.reply_language)
    if language not in ("en", "ja"):
        raise check.fail("[policy] reply_language", "must be 'en' or 'ja'")
    delay = table.get("reject_delay", default.reject_delay)
    if not 0 <= delay <= 10:  # compared before float(), which an integer of 309 digits overflows
        raise check.fail("[policy] reject_delay", "must be between 0 and 10 seconds")
    # Above a thousand, a lockout hardly protects a 6-digit code any more; above 64 bits SQLite
    # cannot bind the threshold, and no failure would be counted at all.
    lockout = check.between(
        "[policy] lockout_threshold", table.get("lockout_threshold", 5), 1, 1000
    )
    password_lockout = check.between(
        "[policy] password_lockout_threshold", table.get("password_lockout_threshold", 10), 1, 1000
    )
    return Policy(
        # A wide window multiplies the HMACs per request and the codes an attacker may guess.
        otp_window=check.between("[policy] otp_window", table.get("otp_window", 1), 0, 10),
        lockout_threshold=lockout,
        password_lockout_threshold=password_lockout,
        unregistered=UnregisteredPolicy(unregistered),
        # An OTP is typed within minutes; beyond a day a pending State is only a liability.
        challenge_timeout=check.between(
            "[policy] challenge_timeout", table.get("challenge_timeout", 120), 1, 86_400
        ),
        reject_delay=float(delay),
        reply_language=language,
    )


def _hashing(check: Checker, table: dict[str, Any]) -> HashingParams:
    # Checked here, not at the first login: argon2 needs 8 KiB per lane, and a slip of the
    # finger in memory_kib would otherwise show up as a worker out of memory.
    lanes = check.between("[hashing] parallelism", table.get("parallelism", 1), 1, 64)
    return HashingParams(
        time_cost=check.between("[hashing] time_cost", table.get("time_cost", 2), 1, 100),
        memory_kib=check.between(
            "[hashing] memory_kib", table.get("memory_kib", 19456), 8 * lanes, 4 << 20
        ),
        parallelism=lanes,
    )


def _tokens(check: Checker, table: dict[str, Any]) -> TokensConfig:
    issuer = table.get("issuer", "otpradius")
    if not issuer or ":" in issuer:
        raise check.fail("[tokens] issuer", "must be non-empty and contain no ':'")
    warn_days = check.between("[tokens] warn_days", table.get("warn_days", 30), 0, 3650)
    return TokensConfig(issuer, warn_days)


def _logging(check: Checker, table: dict[str, Any]) -> LoggingConfig:
    facility = table.get("facility", "authpriv")
    if facility not in _FACILITIES:
        raise check.fail("[logging] facility", f"unknown facility {facility!r}")
    level = table.get("level", "info")
    if level not in _LEVELS:
        raise check.fail("[logging] level", f"must be one of {', '.join(sorted(_LEVELS))}")
    return LoggingConfig(table.get("syslog", True), facility, level)
