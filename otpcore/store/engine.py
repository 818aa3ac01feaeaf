"""Engine setup: SQLite in WAL mode with full sync and immediate write locks, or PostgreSQL."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

# How long a write waits for SQLite's lock (or the writers' turn before it), and an otpctl
# command on PostgreSQL for a row another transaction holds, before it fails as busy.
BUSY_TIMEOUT_S = 60.0
READ_ONLY = "otpradius_read_only"  # execution option: a transaction that never writes
# libpq connection parameters: give up a connect after 5 s, notice a silent peer by
# keepalives after about 20 s idle, and drop a connection whose data goes unacknowledged
# for 10 s (a host that died or a network cut in the middle of a request).
PG_NETWORK: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def make_engine(url: str, *, pool_size: int = 5, unpooled: bool = False) -> Engine:
    """An engine for ``url`` with the pragmas and isolation otpradius relies on.

    ``unpooled`` is for connections a caller keeps for its own lifetime (one per thread, as
    the authentication path does): a bounded pool would make the thread after the last
    pooled connection wait for one that is never returned.
    """
    parsed = make_url(url)
    pooling: dict[str, Any] = {"poolclass": NullPool} if unpooled else {}
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pooling)
    if not unpooled:
        pooling = {"pool_size": pool_size, "pool_pre_ping": True}
    # What the URL's query does not set itself: without these, a server host that died or
    # was cut off leaves a connect, or a request in flight, waiting for minutes on TCP.
    given = set(parsed.query)
    network = {key: value for key, value in PG_NETWORK.items() if key not in given}
    # Pinned, whatever the server's default_transaction_isolation: the conditional writes
    # and the sealing lock are reasoned in READ COMMITTED, where a statement run after a
    # lock is granted sees what the lock's previous holder committed.
    engine = create_engine(
        url, future=True, connect_args=network, isolation_level="READ COMMITTED", **pooling
    )
    if not unpooled:  # the authentication path sets its own, far shorter wait
        event.listen(engine, "connect", _row_wait)
    return engine


def _row_wait(dbapi_connection: Any, _record: Any) -> None:
    # A row held by a transaction that never ends (a psql session left open after SELECT …
    # FOR UPDATE) made an otpctl command wait for ever, where on SQLite it fails as busy.
    # Read when connecting, not when imported: a test shortens it.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a SET in a transaction would go with its rollback
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    finally:
        dbapi_connection.autocommit = autocommit


# Connection parameters whose values are secrets. libpq (and so psycopg) takes them in the
# URL's query as well as before the host: ``postgresql+psycopg://app@db/otp?password=…``.
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_MASK = "***"


def safe_url(url: str | URL) -> str:
    """A database URL fit to print: any password in it masked, in the query too."""
    parsed = make_url(url)
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return shown
    pairs = [
        (key, _MASK if key in _SECRET_PARAMETERS else value) for key, value in parsed.query.items()
    ]
    return f"{shown}?{urlencode(pairs, doseq=True, safe='*')}"


def url_has_password(url: str | URL) -> bool:
    """True when a database URL holds a password, before the host or in its query."""
    parsed = make_url(url)
    return bool(parsed.password) or any(key in _SECRET_PARAMETERS for key in parsed.query)


def driver_reason(exc: BaseException) -> str:
    """The driver's own first line ("connection refused"), without the SQL SQLAlchemy adds."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


def create_private_sqlite_file(url: str) -> bool:
    """Create a missing SQLite database file readable by its owner only; True if created.

    It holds password hashes and sealed seeds: mode 0600 whatever the umask (SQLite gives its
    -wal and -shm files the same permissions). A path that is a symlink (to a data volume, say)
    has the file made where the link points, as SQLite opens it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    # O_EXCL never follows a symlink: on the link itself it fails as on an existing file, and
    # SQLite would then create the file the link names with the umask's mode.
    where = os.path.realpath(str(parsed.database))
    try:
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _sqlite_engine(url: str, pooling: dict[str, Any]) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None},
        future=True,
        **pooling,
    )

    @event.listens_for(engine, "do_connect")
    def _open_existing(
        _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        # Open the file, never create it: SQLite makes a missing one empty, with the umask's
        # mode. A database file deleted under the running daemon was made again so by its next
        # connection, which then found no tables (and the health probe an answering database),
        # and a restart said "no schema: run 'otpctl init'" rather than that the file was gone.
        # ``otpctl init`` creates the file itself first (``create_private_sqlite_file``).
        if cparams.get("uri") or not cargs or cargs[0] in ("", ":memory:"):
            return
        cargs[0] = f"file:{quote(str(cargs[0]))}?mode=rw"
        cparams["uri"] = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A transaction that may write takes the write lock up front: a deferred transaction
        # that reads and then writes can fail at once with "database is locked" when another
        # process wrote in between, and busy_timeout cannot help it. One that only reads must
        # not take it: a listing of a million users would hold up every login's commit.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
