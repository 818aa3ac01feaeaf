"""Wiring: the store, keyring, hashing and use cases built from validated settings."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from otpcore.admin import Admin
from otpcore.config import Settings
from otpcore.crypto import Keyring, load_keyring
from otpcore.errors import (
    ConfigError,
    KeyFileError,
    KeyFileMissing,
    OtherKey,
    StorageError,
    Unavailable,
)
from otpcore.folders import open_to_others
from otpcore.keys import key_needed
from otpcore.passwords import PasswordHashing
from otpcore.ports import Clock
from otpcore.service import Authenticator
from otpcore.store import Store, make_engine
from otpcore.store.engine import driver_reason, safe_url
from otpcore.store.hot import HotStore
from otpcore.store.schema import current_revision, head_revision, known, newer_schema


@dataclass(frozen=True)
class App:
    """Everything a shell needs to serve requests or run commands."""

    settings: Settings
    store: Store
    keyring: Keyring
    hashing: PasswordHashing
    clock: Clock
    hot: HotStore

    def authenticator(self, actor: str = "radius") -> Authenticator:
        """The authentication use case."""
        return Authenticator(
            self.hot, self.keyring, self.hashing, self.settings.policy, self.clock, actor
        )

    def admin(self, actor: str = "otpctl") -> Admin:
        """The administration use cases."""
        return Admin(
            self.store, self.keyring, self.hashing, self.settings.policy, self.clock, actor
        )


def open_store(settings: Settings, pool_size: int = 5) -> Store:
    """The store of the configured database (nothing is created)."""
    return Store(make_engine(settings.database_url, pool_size=pool_size))


def build_app(
    settings: Settings, clock: Clock, *, check_schema: bool = True, turn_wait: float | None = None
) -> App:
    """Open the database and key file named by the settings.

    ``turn_wait``: how long the authentication path waits for the writers' turn (SQLite), in
    seconds; None waits as long as it takes, as the daemon's workers do.
    """
    if check_schema:
        ensure_database_file(settings.database_url)
    store = open_store(settings)
    if check_schema:
        ensure_schema_current(store)
    try:
        keyring = load_keyring(settings.key_file)
    except KeyFileMissing:
        if not check_schema:  # the database may not answer: say no more than the file's error
            raise
        # "run 'otpctl init'" for a database restored without its key would have the
        # operator make a key that opens none of its seeds: init refuses, and says so.
        needed = key_needed(store, settings.key_file)
        if needed is not None:
            raise needed from None
        missing = f"{settings.key_file}: key file not found (run 'otpctl init')"
        raise KeyFileMissing(missing) from None
    if check_schema:
        ensure_key_opens_seeds(store, keyring, settings.key_file)
    hashing = PasswordHashing(settings.hashing)
    hot = HotStore(make_engine(settings.database_url, unpooled=True), turn_wait)
    return App(settings, store, keyring, hashing, clock, hot)


def ensure_database_file(url: str) -> None:
    """Refuse a SQLite path with no database file (rather than create an empty one there), a
    database file (or its -wal or -shm file) that others on the host may read or write, and one
    in a folder they may write in."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.is_file():
        raise StorageError(f"{parsed.database}: no database file: run 'otpctl init' first")
    # Whoever may write in the folder may rename a database of their own over this one, and
    # the running daemon follows the path to it; the sticky bit does not help, as they may
    # still plant the -wal, -shm or -writer file before SQLite makes it. The service's group
    # may: it is the one that writes those files.
    folder = open_to_others(path)
    if folder is not None:
        raise ConfigError(
            f"{folder}: others may write in the database's folder and replace "
            f"{path.name} or plant files beside it; chmod o-w it"
        )
    real = path.resolve()
    # SQLite keeps using a -wal or -shm file it finds, with the mode it has: one left by a
    # daemon killed while the database was open to others stays so after a chmod of the
    # database alone, and the -wal then takes every new password hash.
    _refuse_open_to_others(path)
    for file in (Path(f"{real}{suffix}") for suffix in ("-wal", "-shm")):
        try:
            _refuse_open_to_others(file)
        except FileNotFoundError:
            # None, or SQLite removed it just now, as it does when the last connection to the
            # database closes (another otpctl ending beside this one).
            continue


def _refuse_open_to_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IWOTH:
        raise ConfigError(
            f"{path}: writable by others (mode {mode:04o}), who could change any password, "
            "binding or counter; chmod 600 it"
        )
    if mode & stat.S_IROTH:
        # SQLite gives its -wal and -shm files the database's mode, and a reader of the -shm
        # file can hold SQLite's write lock with a read lock of its own: every commit waits.
        raise ConfigError(
            f"{path}: readable by others (mode {mode:04o}), who could read its password hashes "
            "and hold up every commit; chmod 600 it"
        )


def ensure_schema_current(store: Store) -> None:
    """Refuse a database that is empty or at another schema revision than this code."""
    where = safe_url(store.engine.url)
    try:
        current = current_revision(store.engine)
    except OperationalError as exc:
        if store.engine.dialect.name == "sqlite":  # a file, not a server: no waiting helps
            raise StorageError(f"{where}: cannot open the database: {driver_reason(exc)}") from None
        raise Unavailable(f"{where}: cannot connect: {driver_reason(exc)}") from None
    except Exception as exc:
        raise StorageError(f"{where}: cannot open the database: {driver_reason(exc)}") from None
    head = head_revision()
    if current is None:
        raise StorageError("the database has no schema: run 'otpctl init'")
    if not known(current):
        raise StorageError(newer_schema(current))
    if current != head:
        raise StorageError(
            f"the database schema is at {current}, this version needs {head}: "
            "run 'otpctl db upgrade'"
        )


def ensure_key_opens_seeds(store: Store, keyring: Keyring, key_file: Path) -> None:
    """Refuse a key file that does not open the seeds in the database (a wrong or old key)."""
    # Only a read: every command and worker starts with it, and a write transaction would
    # queue for the writers' turn (or SQLite's lock) behind a login storm.
    with store.reading() as repo:
        token = repo.some_token()
    if token is None:
        return
    try:
        keyring.unseal(token.serial, token.sealed_secret)
    except KeyFileError:
        # Both ids: key files are backed up labelled with theirs, and a database copy opens
        # only with the key whose id its backup printed.
        wanted = keyring.sealed_kid(token.sealed_secret).hex()
        held = keyring.current.kid.hex()
        if wanted == held:
            raise KeyFileError(
                f"{key_file}: does not open the seeds in the database: token {token.serial}'s "
                f"seed names this file's key, {held}, and does not open with it (damaged)"
            ) from None
        raise OtherKey(
            f"{key_file}: does not open the seeds in the database: it is key {held}, and "
            f"token {token.serial}'s seed is sealed under key {wanted}; restore the key file "
            "with that id (this one is another, or from before or after a 'key rotate')"
        ) from None
