"""The schema under Alembic: create, upgrade, and tell the current revision.

Alembic is imported only to migrate: every command and the daemon check the revision with
one query, and Alembic's import alone costs a tenth of a second at each start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from otpcore.store.engine import READ_ONLY

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0003"  # the newest migration; tests/unit/test_schema.py keeps it equal to Alembic's head
_MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(engine: Engine, target: str = "head") -> None:
    """Apply every migration not yet applied, up to ``target`` (the newest by default)."""
    from alembic import command

    cfg = _config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, target)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    # Read-only: on SQLite any other transaction begins IMMEDIATE and waits for the write
    # lock, which every command and worker would then meet at start behind a login storm.
    with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest revision this version of otpradius knows."""
    return HEAD


def alembic_head() -> str | None:
    """The head revision as Alembic computes it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()
