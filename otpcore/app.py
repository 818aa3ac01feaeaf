"""Wiring: the store, keyring, hashing and use cases built from validated settings."""

from __future__ import annotations

from dataclasses import dataclass

from otpcore.admin import Admin
from otpcore.config import Settings
from otpcore.crypto import Keyring, PasswordHashing, load_keyring
from otpcore.errors import StorageError
from otpcore.ports import Clock
from otpcore.service import Authenticator
from otpcore.store import Store, make_engine
from otpcore.store.hot import HotStore
from otpcore.store.schema import current_revision, head_revision


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


def build_app(settings: Settings, clock: Clock, *, check_schema: bool = True) -> App:
    """Open the database and key file named by the settings."""
    store = open_store(settings)
    if check_schema:
        ensure_schema_current(store)
    keyring = load_keyring(settings.key_file)
    hashing = PasswordHashing(settings.hashing)
    hot = HotStore(make_engine(settings.database_url, unpooled=True))
    return App(settings, store, keyring, hashing, clock, hot)


def ensure_schema_current(store: Store) -> None:
    """Refuse a database that is empty or at another schema revision than this code."""
    try:
        current = current_revision(store.engine)
    except Exception as exc:
        raise StorageError(f"cannot open the database: {type(exc).__name__}") from None
    head = head_revision()
    if current is None:
        raise StorageError("the database has no schema: run 'otpctl init'")
    if current != head:
        raise StorageError(
            f"the database schema is at {current}, this version needs {head}: "
            "run 'otpctl db upgrade'"
        )
