"""The schema under Alembic: create, upgrade, and tell the current revision.

Alembic is imported only to migrate: every command and the daemon check the revision with
one query, and Alembic's import alone costs a tenth of a second at each start.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, insert, inspect, text

from otpcore.errors import StorageError
from otpcore.store.engine import READ_ONLY
from otpcore.store.models import ACTOR_MAX, AuditRow

if TYPE_CHECKING:
    from alembic.config import Config

# Every migration of this release, oldest first; tests/unit/test_schema.py keeps them equal
# to Alembic's. A database at a revision not listed was upgraded by a later release.
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]
_MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock held while the schema is created or upgraded (a number the
# deployment uses for nothing else; "otp" "schm").
SCHEMA_LOCK_KEY = 0x6F7470_7363686D


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(
    engine: Engine,
    target: str = "head",
    *,
    only_if_empty: bool = False,
    recorded_by: tuple[datetime, str] | None = None,
) -> str | None:
    """Apply every migration not yet applied, up to ``target`` (the newest by default), or
    with ``only_if_empty`` only to a database without a schema; the revision found before.

    With ``recorded_by`` (the instant and the actor), a change of revision writes a
    ``db_upgrade`` audit event in the same transaction as the migration.
    """
    from alembic import command

    cfg = _config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Nodes set up at the same time (`otpctl init` on each) would both see no schema
            # and both create it, and all but the first fail on a duplicate table. The
            # revision is read under the lock, so the others find the schema made. SQLite's
            # transactions here begin IMMEDIATE, which orders them the same way.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        before = _revision(connection)
        if before is not None and not only_if_empty and not known(before):
            raise StorageError(newer_schema(before))
        if before is None or not only_if_empty:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, target)
            after = _revision(connection)
            if recorded_by is not None and after != before:
                # In the migration's transaction: a schema change the audit does not show
                # cannot happen, and neither can an event for a change rolled back.
                at, actor = recorded_by
                connection.execute(
                    insert(AuditRow).values(at=at, actor=actor[:ACTOR_MAX], action="db_upgrade",
                                            targets="", outcome="ok",
                                            detail=f"from {before or 'empty'} to {after}")
                )  # fmt: skip
    return before


def _revision(connection: Connection) -> str | None:
    """The revision as ``connection`` sees it, or None without a schema."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    # Read-only: on SQLite any other transaction begins IMMEDIATE and waits for the write
    # lock, which every command and worker would then meet at start behind a login storm.
    with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
        return _revision(connection)


def head_revision() -> str:
    """The newest revision this version of otpradius knows."""
    return HEAD


def known(revision: str) -> bool:
    """Whether ``revision`` is one of this release's migrations."""
    return revision in REVISIONS


def newer_schema(revision: str) -> str:
    """What to do about a database a later release upgraded: no migration here goes back."""
    # One node of several upgraded first, or a release rolled back: `otpctl db upgrade` of
    # this release cannot help, and saying so spares the operator Alembic's own words.
    return (
        f"the database schema is at {revision}, newer than this version of otpradius knows "
        f"(up to {HEAD}): run the release that upgraded it"
    )


def alembic_revisions() -> list[str]:
    """Every revision Alembic finds in the migration scripts, oldest first."""
    from alembic.script import ScriptDirectory

    walk = ScriptDirectory.from_config(_config()).walk_revisions()
    return [script.revision for script in reversed(list(walk))]


def alembic_head() -> str | None:
    """The head revision as Alembic computes it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()
