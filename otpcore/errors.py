"""The one error tree of otpradius.

Outcomes of authentication are values (see ``decision.Decision``); exceptions are for
configuration, storage and misuse. The shells map these classes to exit codes and replies
in one place each.

    OtpError
    ├── ConfigError          a configuration file or key is wrong, or a file open to others
    ├── KeyFileError         the seed key file is missing, unreadable or too open
    │   └── KeyFileMissing   there is no key file at the configured path
    ├── StorageError         the database cannot be reached or refused a write
    │   └── Unavailable      the database is unreachable right now (fail closed)
    │       └── Busy         another writer kept it past the busy timeout
    ├── ListenError          a listening address is taken or cannot be bound
    ├── NotFound             a user, token or challenge does not exist
    ├── AlreadyExists        a user or serial is already present
    ├── InvalidInput         bad input: a value, a row, a field
    │   └── ImportRefused    a whole import file refused (names file and line)
    ├── PermissionDenied     the actor may not do this (class, confirmation password)
    └── StateError           the operation does not fit the user's or token's state
"""

from __future__ import annotations


class OtpError(Exception):
    """Base of every error otpradius raises on purpose."""

    exit_code = 1


class ConfigError(OtpError):
    """A configuration file, key or value is wrong, or a file it names is open to others."""

    exit_code = 78  # EX_CONFIG


class KeyFileError(OtpError):
    """The seed key file is missing, malformed or readable by others."""

    exit_code = 78


class KeyFileMissing(KeyFileError):
    """No key file at the configured path: before ``otpctl init``, or one lost or moved."""


class OtherKey(KeyFileError):
    """The key file's key is not the one the database's seeds are sealed under (a rotation
    on another node, a database copy from before or after one)."""


class StorageError(OtpError):
    """The database refused an operation."""

    exit_code = 74  # EX_IOERR


class Unavailable(StorageError):
    """The database cannot be reached right now."""

    exit_code = 69  # EX_UNAVAILABLE


class Busy(Unavailable):
    """Another writer kept the database (or the writers' turn, or on PostgreSQL a row the
    operation writes) for the whole busy timeout."""

    def __init__(self, seconds: float, held: str = "another writer held it") -> None:
        super().__init__(f"database busy: {held} for over {seconds:g} s; try again")


class RowsHeld(Unavailable):
    """A user's, token's or challenge's row stayed locked by another transaction (an import,
    an administrator's open session) past the hot path's lock wait."""


class WriteConflict(Unavailable):
    """The database failed a write transaction that met another in a lock cycle; it may be
    run again as it was."""


class ListenError(OtpError):
    """A listening address is already in use or cannot be bound on this host."""

    exit_code = 69  # EX_UNAVAILABLE


class NotFound(OtpError):
    """A user, token or challenge does not exist."""

    exit_code = 3


class AlreadyExists(OtpError):
    """A login or serial is already present."""

    exit_code = 4


class InvalidInput(OtpError):
    """A value given by the caller is not acceptable."""

    exit_code = 2


class ImportRefused(InvalidInput):
    """An import file was refused as a whole; nothing was written."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line


class Interrupted(OtpError):
    """A signal stopped the operation before it finished; it wrote nothing."""

    exit_code = 130  # as a shell reports a process stopped by Ctrl-C


class PermissionDenied(OtpError):
    """The actor is not allowed to perform the operation."""

    exit_code = 5


class StateError(OtpError):
    """The operation does not fit the current state of the user or token."""

    exit_code = 6
