"""``otpctl init``, ``otpctl db upgrade|backup``, ``otpctl key rotate``: schema, copy, seed key."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cli.context import CliContext, operator
from otpcore.app import ensure_database_file, open_store
from otpcore.config import Settings
from otpcore.crypto import pending_key_path, read_key
from otpcore.errors import (
    Interrupted,
    InvalidInput,
    OtpError,
    StorageError,
    Unavailable,
)
from otpcore.keys import create_key, key_files_held, key_needed, prepare_rotation, rotate
from otpcore.store import Store
from otpcore.store.backup import Backup, backup_database
from otpcore.store.engine import create_private_sqlite_file, driver_reason, safe_url
from otpcore.store.schema import current_revision, head_revision, known, newer_schema, upgrade

pass_cli = click.make_pass_decorator(CliContext)

T = TypeVar("T")


def _database(settings: Settings, what: Callable[[Store], T]) -> T:
    """Run a schema operation, turning a driver error into a one-line StorageError, or
    Unavailable when the database server does not answer (as every other command says)."""
    where = safe_url(settings.database_url)
    store = open_store(settings, pool_size=1)
    try:
        try:
            store.engine.connect().close()  # kept by the pool for ``what``
        except OperationalError as exc:
            if store.engine.dialect.name != "sqlite":  # SQLite's file has no server to wait for
                raise Unavailable(f"{where}: cannot connect: {driver_reason(exc)}") from None
            raise
        return what(store)
    except OtpError:
        raise
    except Exception as exc:
        raise StorageError(f"{where}: {driver_reason(exc)}") from None
    finally:
        store.dispose()


def _create_private(settings: Settings) -> None:
    """Create a missing SQLite file owner-only: SQLite would make it, and its -wal and -shm,
    with the umask's mode, readable by everyone, while it holds hashes and sealed seeds."""
    try:
        create_private_sqlite_file(settings.database_url)
    except OSError as exc:
        url = safe_url(settings.database_url)
        raise StorageError(f"{url}: cannot create: {exc.strerror}") from None


def _refuse_a_key_for_sealed_seeds(settings: Settings) -> None:
    """A database restored without its key file: a new key would open none of its seeds, and
    every command after would fail on them."""
    parsed = make_url(settings.database_url)
    if parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database)).exists():
        return  # a new database: opening it now would create it
    needed = _database(settings, lambda store: key_needed(store, settings.key_file))
    if needed is not None:
        raise needed


@click.command("init")
@pass_cli
def init(obj: CliContext) -> None:
    """Create the key file and the database schema; never overwrites either."""
    settings = obj.settings()
    # lexists: a folder it may not look into is the key file's own error, said by create_key.
    if not os.path.lexists(settings.key_file):
        _refuse_a_key_for_sealed_seeds(settings)
    created = create_key(settings.key_file)
    # The id labels the copy of the key that goes with the database's backups (see db backup).
    kid = read_key(settings.key_file).kid.hex()
    if created:
        click.echo(f"Created key file {settings.key_file} (mode 0600), key id {kid}.")
    else:
        click.echo(f"Key file {settings.key_file} (key id {kid}) already exists: left as it is.")
    url = safe_url(settings.database_url)
    _create_private(settings)

    recorded_by = (obj.clock(), operator())
    present = _database(
        settings, lambda store: upgrade(store.engine, only_if_empty=True, recorded_by=recorded_by)
    )
    if present is None:
        click.echo(f"Created the database schema (revision {head_revision()}) in {url}.")
    elif present == head_revision():
        click.echo(f"Database {url} already has the schema (revision {present}): left as it is.")
    elif not known(present):
        click.echo(f"Database {url}: left as it is; {newer_schema(present)}.")
    else:
        click.echo(
            f"Database {url} already has a schema at revision {present}: left as it is; "
            "run 'otpctl db upgrade' to bring it to this version."
        )
    if created and present is not None:
        # The usual slip on a second node: its own new key opens none of the seeds the other
        # nodes import, and nothing would fail until the first such login went unanswered.
        click.echo(
            f"{settings.key_file} is a new key, but the database had its schema already: if "
            "another node uses this database, put a copy of that node's key file (mode 0600) "
            "in its place before this node serves or imports anything; every node needs the "
            "same key."
        )


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_cli
def db_upgrade(obj: CliContext) -> None:
    """Apply every schema migration not yet applied."""
    settings = obj.settings()
    _create_private(settings)

    def migrate(store: Store) -> tuple[str | None, str | None]:
        before = upgrade(store.engine, recorded_by=(obj.clock(), operator()))
        return before, current_revision(store.engine)

    before, after = _database(settings, migrate)
    if before == after:
        click.echo(f"The database schema is already at revision {after}.")
    else:
        click.echo(f"Upgraded the database schema from {before or 'empty'} to revision {after}.")


_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_cli
def db_backup(obj: CliContext, file: str) -> None:
    """Write a checked, consistent copy of the SQLite database to FILE, the server running."""
    if file.endswith(os.sep):
        raise InvalidInput(f"{file}: names a folder; give the copy's file name")
    settings = obj.settings()
    ensure_database_file(settings.database_url)
    store = open_store(settings, pool_size=1)
    # A stop (Ctrl-C, SIGTERM from timeout or systemd, SIGHUP from a dropped session) must
    # clean up: no partial copy left behind, and a true word on the copy if it has its name.
    previous = {number: signal.signal(number, _interrupted) for number in _STOPS}
    try:
        copy = backup_database(store, Path(file), obj.clock, operator())
    except KeyboardInterrupt:  # before the copy was begun: within it, the core tells
        raise Interrupted(f"{file}: interrupted; no copy written") from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        store.dispose()
    click.echo(
        f"Wrote a checked copy of {safe_url(settings.database_url)} to {copy.path} "
        f"({copy.size:,} bytes, mode {copy.mode:04o}); {_sealed_under(copy, settings)}."
    )


def _interrupted(_signum: int, _frame: object) -> None:
    # One stop is enough: a second must not cut short the first one's cleanup, nor the look at
    # whether the copy already has its name.
    for number in _STOPS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


def _sealed_under(copy: Backup, settings: Settings) -> str:
    """Which key file opens the copy's seeds, as far as this host's key files tell."""
    if not copy.key_ids:
        return "it holds no seeds"
    files: dict[str, str] = {}
    for path in (settings.key_file, pending_key_path(settings.key_file)):
        with contextlib.suppress(OtpError, OSError):
            files[read_key(path).kid.hex()] = str(path)
    named = [f"{kid} ({files.get(kid, 'no key file here')})" for kid in copy.key_ids]
    advice = "; keep that key file apart from it"
    if any(files.get(kid, "").endswith(".new") for kid in copy.key_ids):
        advice = "; a key rotation is unfinished: run 'otpctl key rotate', then back up again"
    return f"its seeds are sealed under key {', '.join(named)}{advice}"


@click.group("key")
def key() -> None:
    """The seed-encryption key file."""


@key.command("rotate")
@click.option(
    "--prepare",
    is_flag=True,
    help="Only write the next key (KEY.new) to copy to the other nodes; seal nothing yet.",
)
@pass_cli
def key_rotate(obj: CliContext, prepare: bool) -> None:
    """Make a new key and re-seal every seed under it, in one transaction."""
    if prepare:
        pending, created = prepare_rotation(obj.settings().key_file)
        made = "Wrote the next key to" if created else "The next key is already in"
        click.echo(
            f"{made} {pending}. Copy it (mode 0600) beside the key file of every other node, "
            "then run 'otpctl key rotate' here."
        )
        return
    key_file = obj.settings().key_file
    # The start's checks read the key files too: not while another rotation on this host
    # renames its key over them. Whether the key was prepared, and its id, as the rotation
    # found and left the key files under its locks: read before or after, they could be
    # another rotation's.
    with key_files_held(key_file):
        app = obj.app()
        rotation = rotate(app.store, key_file, app.clock, operator())
    click.echo(
        f"Re-sealed {rotation.count} seed(s) under a new key, id {rotation.kid.hex()}; "
        f"{key_file} replaced. Back it up apart from the database, labelled with that id."
    )
    if app.store.engine.dialect.name != "sqlite":
        # Other nodes share the database, each with a copy of the key: the step they still
        # need was said only in README.
        next_key = pending_key_path(key_file).name
        if rotation.prepared:
            click.echo(
                f"On every other node, move its {next_key} over its {key_file.name} (it opens "
                "the seeds with either meanwhile; a later --prepare would overwrite it)."
            )
        else:
            click.echo(
                f"Copy {key_file} (mode 0600) over the key file of every other node now: until "
                "they have it they open none of the seeds, and leave their logins unanswered."
            )
